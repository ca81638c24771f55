// Package dkim signs outbound mail (RFC 6376) with the keys of the domains
// vmaild hosts: ed25519 (RFC 8463) and RSA keys kept as PEM files, one per
// domain and selector, and the DNS TXT record each key needs published.
// The signing itself is emersion/go-msgauth's; this package owns the keys,
// the choice of which key signs which message, and the header policy.
package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Algorithms keygen knows.
const (
	Ed25519 = "ed25519"
	RSA     = "rsa"
)

// rsaBits is the size of generated RSA keys: RFC 8301 asks for at least
// 1024 and recommends 2048; larger keys no longer fit one DNS string
// comfortably.
const rsaBits = 2048

// minRSABits is the smallest RSA key that is loaded (RFC 8301 3.2: verifiers
// must not accept smaller ones).
const minRSABits = 1024

// maxKeyFile bounds what is read as a key file: a PEM RSA-4096 key is
// about 3 KiB.
const maxKeyFile = 64 << 10

// Generate makes a new private key of the algorithm (Ed25519 or RSA).
func Generate(algorithm string) (crypto.Signer, error) {
	switch algorithm {
	case Ed25519, "":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case RSA:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	}
	return nil, fmt.Errorf("dkim: algorithm %q is not ed25519 or rsa", algorithm)
}

// WriteKey writes key to path as a PKCS #8 PEM file readable by its owner
// only, creating the folders; an existing file is never overwritten (a
// published key would silently stop verifying).
func WriteKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("dkim key %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("dkim key %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("dkim key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("dkim key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("dkim key %s: %w", path, err)
	}
	return f.Close()
}

// ErrLooseMode is returned (wrapped) with a key that was loaded but whose
// file others may read: the caller warns and uses the key, as OpenSSH
// would not, because refusing would stop signing over a chmod.
var ErrLooseMode = errors.New("readable by group or others; chmod 600 it")

// LoadKey reads a PEM private key: PKCS #8 (what WriteKey writes and
// `openssl genpkey` makes), PKCS #1 RSA ("BEGIN RSA PRIVATE KEY", what
// opendkim-genkey makes). Anything else, an RSA key under 1024 bits or a
// second PEM block is refused. A key whose file is readable by others is
// returned together with an error wrapping ErrLooseMode.
func LoadKey(path string) (crypto.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("dkim key %s: not a regular file", path)
	}
	if st.Size() > maxKeyFile {
		return nil, fmt.Errorf("dkim key %s: %d bytes is too large for a key", path, st.Size())
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("dkim key %s: %w", path, err)
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("dkim key %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return key, fmt.Errorf("dkim key %s (mode %04o): %w", path, st.Mode().Perm(), ErrLooseMode)
	}
	return key, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key in it")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, errors.New("more than one PEM block")
	}
	var k any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		if n := k.N.BitLen(); n < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is too small (at least %d)", n, minRSABits)
		}
		return k, nil
	}
	return nil, fmt.Errorf("a %T key cannot sign DKIM (ed25519 or RSA)", k)
}

// Record is the DNS TXT record value that publishes key's public half,
// "v=DKIM1; k=ed25519; p=…".
func Record(key crypto.Signer) (string, error) {
	var kind string
	var der []byte
	switch pub := key.Public().(type) {
	case ed25519.PublicKey:
		// RFC 8463: the raw 32-byte key, not a SubjectPublicKeyInfo.
		kind, der = Ed25519, pub
	case *rsa.PublicKey:
		var err error
		if der, err = x509.MarshalPKIXPublicKey(pub); err != nil {
			return "", err
		}
		kind = RSA
	default:
		return "", fmt.Errorf("dkim: %T key", pub)
	}
	return "v=DKIM1; k=" + kind + "; p=" + base64.StdEncoding.EncodeToString(der), nil
}

// ZoneLine is the record as a zone file line, the value cut into strings
// of at most 255 bytes as DNS requires (an RSA-2048 key is longer).
func ZoneLine(domain, selector, record string) string {
	var parts []string
	for len(record) > 255 {
		parts = append(parts, `"`+record[:255]+`"`)
		record = record[255:]
	}
	parts = append(parts, `"`+record+`"`)
	return selector + "._domainkey." + strings.TrimSuffix(domain, ".") + ". IN TXT " + strings.Join(parts, " ")
}

// KeyPath is where the key of a domain and selector lives under dir
// (data_dir/dkim).
func KeyPath(dir, domain, selector string) string {
	return filepath.Join(dir, strings.ToLower(domain), selector+".key")
}
