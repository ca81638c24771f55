package main

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/dkim"
	"github.com/vmaild/vmaild/protocols/dnsrecords"
	"github.com/vmaild/vmaild/userdb"
)

// openDKIM loads the signing keys, at start and on reload: a key that is
// configured but does not load stops the start (as `vmaild config check`
// reports it) and makes a reload keep the keys it had, since mail of a
// domain with a published key going out unsigned fails DMARC at the big
// providers.
func (s *server) openDKIM(c DKIMConfig) (*dkim.Signer, error) {
	signer, warnings, err := c.signer()
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		s.log.Warn("dkim key file readable by others", "err", w)
	}
	s.log.Info("dkim signing", "domains", signer.Domains())
	return signer, nil
}

// reloadDKIM reads the keys again (a new selector of a rotation, a key
// retired); on failure the old keys go on signing.
func (s *server) reloadDKIM(c DKIMConfig) (answer string, loaded bool) {
	signer, err := s.openDKIM(c)
	if err != nil {
		s.log.Error("dkim reload failed; keeping the old keys", "err", err)
		return "kept the old keys: " + err.Error(), false
	}
	s.dkim.Store(signer)
	return fmt.Sprintf("reloaded, %d domains sign", len(signer.Domains())), true
}

// signSubmitted is the delivery agent's Sign hook: mail an authenticated
// user sends is signed by the From domain when it is the domain of the
// envelope sender or of the login, both of which the submission checks
// already tied to the user, so that with smtp.check_header_from off a
// user still cannot get a signature for a domain of another customer.
// signer is the current signer (reload swaps it).
func signSubmitted(signer func() *dkim.Signer) func(ctx context.Context, env *delivery.Envelope, msg delivery.Message) ([]byte, error) {
	return func(ctx context.Context, env *delivery.Envelope, msg delivery.Message) ([]byte, error) {
		allow := func(domain string) bool {
			for _, a := range []string{env.From, env.User} {
				if _, d, err := userdb.Split(a); err == nil && d == domain {
					return true
				}
			}
			return false
		}
		return signer().Sign(msg, msg.Size(), allow)
	}
}

// signDSN is the queue's hook: a bounce is signed by the domain of its
// From (MAILER-DAEMON@hostname) when that domain has a key.
func signDSN(signer func() *dkim.Signer) func(dsn []byte) ([]byte, error) {
	return func(dsn []byte) ([]byte, error) {
		return signer().Sign(bytes.NewReader(dsn), int64(len(dsn)), nil)
	}
}

// dkimCommand makes and shows the signing keys.
func (a *app) dkimCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dkim",
		Short: "Make DKIM signing keys and show the DNS records that publish them",
		Long: "Keys live in dkim.dir (default data_dir/dkim) as DOMAIN/SELECTOR.key, mode 0600;\n" +
			"every key of a domain signs its mail (two during a rotation). vmaild reads the keys\n" +
			"at start and on reload (`vmaild reload`, SIGHUP).",
	}
	var selector, algorithm string
	keygen := &cobra.Command{
		Use:   "keygen DOMAIN",
		Short: "Make a signing key for DOMAIN and print the TXT record to publish",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			domain, err := userdb.CanonicalDomain(args[0])
			if err != nil {
				return err
			}
			if selector == "" {
				// A date names the key's generation, so the next one
				// (the rotation) gets a different name by itself.
				selector = "s" + time.Now().UTC().Format("200601")
			}
			if err := dkim.CheckSelector(selector); err != nil {
				return err
			}
			key, err := dkim.Generate(algorithm)
			if err != nil {
				return err
			}
			path := dkim.KeyPath(a.cfg.DKIM.Dir, domain, selector)
			if err := dkim.WriteKey(path, key); err != nil {
				return err
			}
			if err := giveToRunAs(a.cfg.RunAs, a.cfg.DKIM.Dir, path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "key written to %s; publish this record, then run vmaild reload:\n", path)
			return printRecord(cmd.OutOrStdout(), domain, selector, key)
		},
	}
	keygen.Flags().StringVar(&selector, "selector", "", "selector (default s and the year and month, e.g. s202612)")
	keygen.Flags().StringVar(&algorithm, "algorithm", dkim.Ed25519, "ed25519 or rsa (RSA-2048: every verifier knows it; ed25519 only the newer)")
	show := &cobra.Command{
		Use:   "show DOMAIN",
		Short: "Print the TXT record of each signing key of DOMAIN",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			domain, err := userdb.CanonicalDomain(args[0])
			if err != nil {
				return err
			}
			keys, warnings, err := a.cfg.DKIM.records(domain)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if len(keys) == 0 {
				return errors.New("no DKIM key for " + domain + ": make one with `vmaild dkim keygen " + domain + "`")
			}
			for _, k := range keys {
				if _, err := fmt.Fprintln(cmd.OutOrStdout(), dkim.ZoneLine(domain, k.Selector, k.Record)); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.AddCommand(keygen, show)
	return cmd
}

// records are the TXT records of domain's signing keys: what `vmaild dkim
// show` prints and `vmaild dns` lists. warnings are key files others may
// read.
func (c DKIMConfig) records(domain string) ([]dnsrecords.DKIMKey, []error, error) {
	specs, err := c.specs()
	if err != nil {
		return nil, nil, err
	}
	keys, warnings, err := dkim.LoadKeys(c.Dir, specs)
	if err != nil {
		return nil, nil, err
	}
	var out []dnsrecords.DKIMKey
	for _, k := range keys {
		if k.Domain != domain {
			continue
		}
		rec, err := dkim.Record(k.Signer)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, dnsrecords.DKIMKey{Selector: k.Selector, Record: rec})
	}
	return out, warnings, nil
}

// printRecord writes the zone line that publishes key.
func printRecord(w io.Writer, domain, selector string, key crypto.Signer) error {
	rec, err := dkim.Record(key)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, dkim.ZoneLine(domain, selector, rec))
	return err
}

// giveToRunAs hands a key made by root to the run_as user, who reads it
// at start after dropping privileges: the key, its domain folder and the
// key folder.
func giveToRunAs(runAs, dir, path string) error {
	if os.Geteuid() != 0 || runAs == "" {
		return nil
	}
	uid, gid, err := runAsIDs(runAs)
	if err != nil {
		return err
	}
	for _, p := range []string{dir, filepath.Dir(path), path} {
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("dkim key for run_as %s: %w", runAs, err)
		}
	}
	return nil
}
