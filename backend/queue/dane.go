package queue

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// TLSA fields RFC 7672 section 3.1 allows for SMTP: DANE-TA(2) and
// DANE-EE(3) usages; PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP.
const (
	usageDANETA   = 2
	usageDANEEE   = 3
	selectorCert  = 0
	selectorSPKI  = 1
	matchFull     = 0
	matchSHA256   = 1
	matchSHA512   = 2
	maxTLSAFullLn = 64 << 10
)

// tlsaUsable reports whether a record can authenticate an SMTP server.
func tlsaUsable(t *dns.TLSA) bool {
	if t.Usage != usageDANETA && t.Usage != usageDANEEE {
		return false
	}
	if t.Selector != selectorCert && t.Selector != selectorSPKI {
		return false
	}
	data, err := hex.DecodeString(t.Certificate)
	if err != nil {
		return false
	}
	switch t.MatchingType {
	case matchFull:
		return len(data) > 0 && len(data) <= maxTLSAFullLn
	case matchSHA256:
		return len(data) == sha256.Size
	case matchSHA512:
		return len(data) == sha512.Size
	}
	return false
}

// tlsaMatches reports whether cert is what the record names.
func tlsaMatches(t *dns.TLSA, cert *x509.Certificate) bool {
	data, err := hex.DecodeString(t.Certificate)
	if err != nil {
		return false
	}
	blob := cert.Raw
	if t.Selector == selectorSPKI {
		blob = cert.RawSubjectPublicKeyInfo
	}
	switch t.MatchingType {
	case matchSHA256:
		sum := sha256.Sum256(blob)
		blob = sum[:]
	case matchSHA512:
		sum := sha512.Sum512(blob)
		blob = sum[:]
	}
	return bytes.Equal(blob, data)
}

var errDANE = errors.New("certificate matches no TLSA record")

// daneVerify authenticates a server's chain with usable TLSA records
// (RFC 7672 section 3): a DANE-EE record must match the leaf, and then
// names and dates do not matter; a DANE-TA record must match a
// certificate of the chain that then anchors the leaf, which must name
// host and be in its validity period.
func daneVerify(chain []*x509.Certificate, tlsa []*dns.TLSA, host string) error {
	if len(chain) == 0 {
		return errors.New("server sent no certificate")
	}
	leaf := chain[0]
	var taErr error
	for _, t := range tlsa {
		switch t.Usage {
		case usageDANEEE:
			if tlsaMatches(t, leaf) {
				return nil
			}
		case usageDANETA:
			for _, c := range chain[1:] {
				if !tlsaMatches(t, c) {
					continue
				}
				roots := x509.NewCertPool()
				roots.AddCert(c)
				inter := x509.NewCertPool()
				for _, ic := range chain[1:] {
					inter.AddCert(ic)
				}
				_, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
				if err == nil {
					return nil
				}
				taErr = err
			}
		}
	}
	if taErr != nil {
		return fmt.Errorf("%w: trust anchor found, but %w", errDANE, taErr)
	}
	return errDANE
}
