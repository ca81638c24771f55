package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// certificates serves the current certificate to every TLS handshake and
// swaps it on reload (SIGHUP), so a renewed certificate takes effect
// without dropping a connection.
type certificates struct {
	certFile, keyFile string
	current           atomic.Pointer[tls.Certificate]
}

// loadCertificates reads the configured pair, or, when none is configured,
// a self-signed certificate kept in the data folder (made on first start).
func loadCertificates(cfg TLSFiles, dataDir, hostname string, log *slog.Logger) (*certificates, error) {
	c := &certificates{certFile: cfg.CertFile, keyFile: cfg.KeyFile}
	if (c.certFile == "") != (c.keyFile == "") {
		return nil, errors.New("tls: set both tls.cert_file and tls.key_file, or neither")
	}
	if c.certFile == "" {
		dir := filepath.Join(dataDir, "tls")
		c.certFile, c.keyFile = filepath.Join(dir, "selfsigned.crt"), filepath.Join(dir, "selfsigned.key")
		if _, err := os.Stat(c.certFile); errors.Is(err, fs.ErrNotExist) {
			if err := writeSelfSigned(dir, c.certFile, c.keyFile, hostname); err != nil {
				return nil, err
			}
		}
		log.Warn("NO CERTIFICATE CONFIGURED: using a self-signed certificate; clients will not trust it. Set tls.cert_file and tls.key_file for production.",
			"cert_file", c.certFile)
	}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certificates) reload() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s: %w", c.certFile, err)
	}
	c.current.Store(&cert)
	return nil
}

// config is the TLS configuration every listener shares: TLS 1.2 or newer.
func (c *certificates) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.current.Load(), nil
		},
	}
}

func writeSelfSigned(dir, certFile, keyFile, hostname string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"vmaild self-signed"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{hostname, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}
