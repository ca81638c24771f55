package main

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/vmaild/vmaild/backend/queue"
)

// The smarthost TLS policies (queue.smarthost.tls).
const (
	// smarthostTLSNone talks plaintext: a content filter on loopback.
	smarthostTLSNone = "none"
	// smarthostTLSStartTLS requires STARTTLS (or implicit_tls); the
	// certificate is verified against ca_file when one is set, and taken
	// unchecked otherwise (a relay with a self-signed certificate on a
	// network the admin trusts).
	smarthostTLSStartTLS = "starttls"
	// smarthostTLSVerify requires STARTTLS (or implicit_tls) and a
	// certificate valid for the relay's name under the system roots, or
	// under ca_file when set. The default.
	smarthostTLSVerify = "verify"
)

// validate reports every problem of the smarthost keys.
func (s Smarthost) validate() []string {
	if s.Address == "" {
		return nil
	}
	var problems []string
	switch s.TLS {
	case "", smarthostTLSVerify, smarthostTLSStartTLS:
	case smarthostTLSNone:
		if s.Username != "" {
			problems = append(problems, "queue.smarthost: tls none sends no credentials in plaintext; drop username or choose starttls or verify")
		}
		if s.ImplicitTLS {
			problems = append(problems, "queue.smarthost: tls none contradicts implicit_tls")
		}
		if s.CAFile != "" {
			problems = append(problems, "queue.smarthost: tls none uses no ca_file")
		}
	default:
		problems = append(problems, fmt.Sprintf("queue.smarthost.tls: %q is not none, starttls or verify", s.TLS))
	}
	if s.CAFile != "" && s.TLS != smarthostTLSNone {
		if _, err := s.roots(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return problems
}

func (s Smarthost) roots() (*x509.CertPool, error) {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("queue.smarthost.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("queue.smarthost.ca_file: %s holds no PEM certificate", s.CAFile)
	}
	return pool, nil
}

// queueSmarthost turns the keys into the queue's smarthost; nil when
// mail goes by MX.
func (s Smarthost) queueSmarthost() (*queue.Smarthost, error) {
	if s.Address == "" {
		return nil, nil
	}
	sh := &queue.Smarthost{Addr: s.Address, Username: s.Username, Password: s.Password, ImplicitTLS: s.ImplicitTLS}
	if s.TLS == smarthostTLSNone {
		sh.PlainText = true
		return sh, nil
	}
	if s.CAFile != "" {
		pool, err := s.roots()
		if err != nil {
			return nil, err
		}
		sh.RootCAs = pool
	} else if s.TLS == smarthostTLSStartTLS {
		sh.InsecureSkipVerify = true
	}
	return sh, nil
}
