package bridge

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/internal/testpostfix"
	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/internal/testusers"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/smtp"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/ldap"
)

// readmeBlock is the fenced block that follows marker in README.md: the
// Postfix lines the README tells admins to use are the ones under test.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- "+marker+" -->\n```\n")
	if !ok {
		t.Fatalf("README.md has no block after <!-- %s -->", marker)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("README.md: block after <!-- %s --> not closed", marker)
	}
	return block
}

// byDomain serves one domain's accounts from LDAP and the others' from
// SQL, so that one Postfix shows both kinds of directory at once (a real
// installation has one account backend; each here is the real one).
type byDomain struct {
	ldapDomain string
	ldap, sql  userdb.AccountSource
}

func (r byDomain) pick(address string) userdb.AccountSource {
	if strings.HasSuffix(address, "@"+r.ldapDomain) {
		return r.ldap
	}
	return r.sql
}

func (r byDomain) LookupAccount(ctx context.Context, address string) (*userdb.Account, error) {
	return r.pick(address).LookupAccount(ctx, address)
}

func (r byDomain) Authenticate(ctx context.Context, address, password string) (*userdb.Account, error) {
	return r.pick(address).Authenticate(ctx, address, password)
}

// TestPostfix starts a real Postfix configured by the README's lines in
// front of vmaild's bridge and LMTP, with LDAP and SQL accounts.
func TestPostfix(t *testing.T) {
	ctx := context.Background()
	sl := testsrv.StartSlapd(t)
	const lena, sam = "lena@ldap.example", "sam@sql.example"
	sl.Load(t, testusers.LDIF(t, []string{lena}))
	ldapSrc, err := ldap.New(ldap.Config{URLs: []string{sl.URL}, BindDN: sl.AdminDN, BindPassword: sl.AdminPassword,
		BaseDN: sl.BaseDN, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ldapSrc.Close() })

	db := testusers.SQLite(t)
	for _, d := range []userdb.Domain{
		{Name: "sql.example", Active: true},
		{Name: "ldap.example", Active: true},
		{Name: "catch.example", Active: true, CatchAll: sam},
	} {
		if err := db.AddDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	testusers.AddAccounts(t, db, "SSHA", map[string]string{sam: testusers.Password(sam), "full@sql.example": "x"})
	if err := db.SetAccountQuota(ctx, "full@sql.example", &userdb.Limit{Bytes: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetUsage(ctx, "full@sql.example", userdb.Usage{Bytes: 5000}); err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{sam, lena} {
		if err := db.AddAlias(ctx, "team@sql.example", dest); err != nil {
			t.Fatal(err)
		}
	}
	users := &userdb.Users{Accounts: byDomain{"ldap.example", ldapSrc, db}, Domains: db, Quotas: db, Senders: db, RecipientDelimiter: "+"}
	st := &store.Store{Root: t.TempDir(), PathTemplate: "%d/%n/Maildir", Hostname: "vmaild.test"}
	agent := &delivery.LocalAgent{Directory: users, Quotas: db, Store: st}
	logins, err := login.New(login.Config{DummyScheme: "SSHA", PenaltyFreeFailures: 100})
	if err != nil {
		t.Fatal(err)
	}
	answers := &Answers{Directory: users, Agent: agent, Logins: logins}

	// vmaild's LMTP, as `vmaild serve` runs it.
	lmtpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lmtp := &smtp.Server{Role: smtp.RoleLMTP, Hostname: "vmaild.test", Directory: users, Agent: agent, SpoolDir: t.TempDir()}
	go lmtp.Serve(lmtpLn)
	t.Cleanup(func() { lmtp.Close() })

	// The bridge sockets, owned by postfix as the README sets them.
	sockets := testpostfix.ReachableDir(t)
	for name, p := range map[string]Protocol{
		"auth": &Dovecot{Answers: answers}, "policy": &Policy{Answers: answers}, "socketmap": &Socketmap{Answers: answers},
	} {
		ln, err := Listen(Socket{Address: filepath.Join(sockets, name), User: "postfix", Group: "postfix", Mode: 0o660})
		if err != nil {
			t.Fatal(err)
		}
		srv := &Server{Protocol: p}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}

	local := strings.NewReplacer("/run/vmaild/", sockets+"/", "127.0.0.1:24", lmtpLn.Addr().String())
	pf := testpostfix.Start(t, testpostfix.Config{
		Main:   local.Replace(readmeBlock(t, "postfix main.cf")),
		Master: readmeBlock(t, "postfix master.cf"),
	})
	submission := pf.Services["submission"]
	if submission == "" {
		t.Fatal("README's master.cf has no submission service")
	}
	swaks := testsrv.RequireBinary(t, "swaks")
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, _ := exec.CommandContext(ctx, swaks, append([]string{"--helo", "client.test", "--timeout", "30"}, args...)...).CombinedOutput()
		return string(out)
	}
	auth := func(t *testing.T, mech, user, pass string) string {
		return run(t, "--server", submission, "--tls", "--auth", mech, "--auth-user", user, "--auth-password", pass, "--quit-after", "AUTH")
	}
	rcpt := func(t *testing.T, to string) string {
		return run(t, "--server", pf.SMTP, "--from", "someone@remote.test", "--to", to, "--quit-after", "RCPT")
	}
	expect := func(t *testing.T, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("want %q in:\n%s\nPostfix log:\n%s", w, out, pf.Log())
			}
		}
	}

	t.Run("AUTH", func(t *testing.T) {
		for _, tc := range []struct {
			mech, user, pass, want string
		}{
			{"PLAIN", lena, testusers.Password(lena), "~  235 2.7.0 Authentication successful"},
			{"LOGIN", lena, testusers.Password(lena), "~  235 2.7.0 Authentication successful"},
			{"PLAIN", sam, testusers.Password(sam), "~  235 2.7.0 Authentication successful"},
			{"LOGIN", sam, testusers.Password(sam), "~  235 2.7.0 Authentication successful"},
			{"PLAIN", lena, "wrong", "~* 535 5.7.8"},
			{"LOGIN", sam, "wrong", "~* 535 5.7.8"},
		} {
			expect(t, auth(t, tc.mech, tc.user, tc.pass), tc.want)
		}
		// Every one went through the login service.
		if s := logins.Stats(); s.OK < 4 || s.Failed < 2 {
			t.Errorf("login service saw %d logins and %d failures, want 4 and 2", s.OK, s.Failed)
		}
	})

	t.Run("RCPT", func(t *testing.T) {
		// Refused by the policy service: vmaild's quota check.
		expect(t, rcpt(t, "full@sql.example"), "<** 450 4.2.2 <full@sql.example>: Recipient address rejected: Mailbox full")
		// Refused by Postfix itself, from the socketmap tables.
		expect(t, rcpt(t, "nobody@sql.example"), "<** 550 5.1.1 <nobody@sql.example>: Recipient address rejected: User unknown in virtual")
		for _, to := range []string{lena, sam, "team@sql.example", "anyone@catch.example", "sam+tag@sql.example"} {
			expect(t, rcpt(t, to), "<-  250 2.1.5 Ok")
		}
	})

	t.Run("delivery", func(t *testing.T) {
		for _, to := range []string{"team@sql.example", "anyone@catch.example"} {
			expect(t, run(t, "--server", pf.SMTP, "--from", "someone@remote.test", "--to", to,
				"--header", "Subject: bridge test to "+to), "<-  250 2.0.0 Ok: queued")
		}
		// The alias reaches both mailboxes, the catch-all sam's.
		want := map[string][]string{
			"sql.example/sam":   {"bridge test to team@sql.example", "bridge test to anyone@catch.example"},
			"ldap.example/lena": {"bridge test to team@sql.example"},
		}
		deadline := time.Now().Add(60 * time.Second)
		for box, subjects := range want {
			for {
				got := mailboxText(t, filepath.Join(st.Root, box, "Maildir", "new"))
				missing := ""
				for _, s := range subjects {
					if !strings.Contains(got, s) {
						missing = s
					}
				}
				if missing == "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %q not delivered; Postfix log:\n%s", box, missing, pf.Log())
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	})

	t.Run("directory down", func(t *testing.T) {
		sl.Stop()
		expect(t, auth(t, "PLAIN", lena, testusers.Password(lena)), "~* 454 4.7.0 Temporary authentication failure")
		for _, to := range []string{lena, "team@sql.example"} {
			out := rcpt(t, to)
			if strings.Contains(out, "<** 5") || !strings.Contains(out, "<** 4") {
				t.Errorf("RCPT %s with slapd stopped: want 4xx, never 5xx:\n%s", to, out)
			}
		}
		// SQL accounts are not affected.
		expect(t, auth(t, "PLAIN", sam, testusers.Password(sam)), "~  235 2.7.0 Authentication successful")
	})
}

// mailboxText is every message of a Maildir folder, concatenated.
func mailboxText(t *testing.T, dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range entries {
		m, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil {
			fmt.Fprintf(&b, "%s\n", m)
		}
	}
	return b.String()
}
