package mtasts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		txt     string
		id      string
		noRec   bool
		wantErr bool
	}{
		{txt: "v=STSv1; id=20160831085700Z;", id: "20160831085700Z"},
		{txt: "v=STSv1;id=abc", id: "abc"},
		{txt: "v=STSv1; id=abc; ext_1=foo;", id: "abc"},
		{txt: "v=STSv1 ; id=abc", id: "abc"},
		{txt: "v=spf1 -all", noRec: true},
		{txt: "", noRec: true},
		{txt: "v=STSv2; id=x", noRec: true},
		{txt: "id=abc; v=STSv1", noRec: true},
		{txt: "v=STSv1;", wantErr: true},
		{txt: "v=STSv1; id=", wantErr: true},
		{txt: "v=STSv1; id=a-b", wantErr: true},
		{txt: "v=STSv1; id=" + strings.Repeat("a", 33), wantErr: true},
		{txt: "v=STSv1; id=a; id=b", wantErr: true},
		{txt: "v=STSv1; id=a; junk", wantErr: true},
	}
	for _, tc := range tests {
		r, err := ParseRecord(tc.txt)
		switch {
		case tc.noRec:
			if !errors.Is(err, ErrNoRecord) {
				t.Errorf("ParseRecord(%q) = %v, %v; want ErrNoRecord", tc.txt, r, err)
			}
		case tc.wantErr:
			if err == nil || errors.Is(err, ErrNoRecord) {
				t.Errorf("ParseRecord(%q) = %v, %v; want a syntax error", tc.txt, r, err)
			}
		case err != nil || r.ID != tc.id:
			t.Errorf("ParseRecord(%q) = %v, %v; want id %q", tc.txt, r, err, tc.id)
		}
	}
}

func TestFindRecord(t *testing.T) {
	if r, err := FindRecord([]string{"v=spf1 -all", "v=STSv1; id=1"}); err != nil || r.ID != "1" {
		t.Errorf("one record among others: %v, %v", r, err)
	}
	if _, err := FindRecord([]string{"v=STSv1; id=1", "v=STSv1; id=2"}); err == nil || errors.Is(err, ErrNoRecord) {
		t.Errorf("two records: %v, want an error", err)
	}
	if _, err := FindRecord(nil); !errors.Is(err, ErrNoRecord) {
		t.Errorf("none: %v", err)
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *Policy
		wantErr string
	}{
		{name: "rfc example", in: "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
			want: &Policy{Mode: Enforce, MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800 * time.Second}},
		{name: "LF, spaces, case, unknown key", in: "version:STSv1\nmode:  testing \nmx: MX.Example.COM.\nfoo: bar\nmax_age: 86400\n\n",
			want: &Policy{Mode: Testing, MX: []string{"mx.example.com"}, MaxAge: 86400 * time.Second}},
		{name: "none needs no mx", in: "version: STSv1\nmode: none\nmax_age: 1\n", want: &Policy{Mode: None, MaxAge: time.Second}},
		{name: "max_age capped", in: "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 9999999999\n", want: &Policy{Mode: Enforce, MX: []string{"a.b"}, MaxAge: MaxAge}},
		{name: "no version", in: "mode: enforce\nmx: a.b\nmax_age: 1\n", wantErr: "no version"},
		{name: "bad version", in: "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", wantErr: "not STSv1"},
		{name: "no mode", in: "version: STSv1\nmx: a.b\nmax_age: 1\n", wantErr: "no mode"},
		{name: "bad mode", in: "version: STSv1\nmode: Enforce\nmx: a.b\nmax_age: 1\n", wantErr: "is not enforce"},
		{name: "no max_age", in: "version: STSv1\nmode: enforce\nmx: a.b\n", wantErr: "no max_age"},
		{name: "negative max_age", in: "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", wantErr: "max_age"},
		{name: "no mx", in: "version: STSv1\nmode: testing\nmax_age: 1\n", wantErr: "no mx"},
		{name: "bad mx", in: "version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n", wantErr: "not a host name"},
		{name: "mx wildcard in the middle", in: "version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 1\n", wantErr: "not a host name"},
		{name: "two modes", in: "version: STSv1\nmode: enforce\nmode: none\nmx: a.b\nmax_age: 1\n", wantErr: "two mode"},
		{name: "not key value", in: "version: STSv1\nmode enforce\n", wantErr: "not key: value"},
		{name: "html", in: "<html><body>hello</body></html>", wantErr: "not key: value"},
		{name: "too big", in: strings.Repeat("x: y\n", MaxPolicyBytes/5+1), wantErr: "over"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Mode != tc.want.Mode || p.MaxAge != tc.want.MaxAge || !slices.Equal(p.MX, tc.want.MX) {
				t.Fatalf("got %+v, want %+v", p, tc.want)
			}
			// What Format writes parses back the same.
			again, err := ParsePolicy(p.Format())
			if err != nil || again.Mode != p.Mode || again.MaxAge != p.MaxAge || !slices.Equal(again.MX, p.MX) {
				t.Fatalf("Format round trip: %+v, %v", again, err)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	p := &Policy{MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com":    true,
		"MAIL.example.com.":   true,
		"x.example.net":       true,
		"example.net":         false,
		"a.b.example.net":     false,
		".example.net":        false,
		"mail.example.com.au": false,
		"other.example.com":   false,
	} {
		if got := p.Match(host); got != want {
			t.Errorf("Match(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestHandler(t *testing.T) {
	h := &Handler{
		Policy: Policy{Mode: Enforce, MX: []string{"mx.example.org"}, MaxAge: 86400 * time.Second},
		IsHosted: func(_ context.Context, d string) (bool, error) {
			if d == "broken.test" {
				return false, errors.New("directory down")
			}
			return d == "example.org", nil
		},
	}
	tests := []struct {
		host, path, method string
		code               int
	}{
		{"mta-sts.example.org", WellKnownPath, "GET", 200},
		{"MTA-STS.Example.ORG:443", WellKnownPath, "GET", 200},
		{"mta-sts.example.org", WellKnownPath, "HEAD", 200},
		{"mta-sts.example.org", WellKnownPath, "POST", 405},
		{"mta-sts.example.org", "/", "GET", 404},
		{"mta-sts.other.test", WellKnownPath, "GET", 404},
		{"example.org", WellKnownPath, "GET", 404},
		{"mta-sts.broken.test", WellKnownPath, "GET", 503},
	}
	for _, tc := range tests {
		req := httptest.NewRequest(tc.method, "http://x"+tc.path, nil)
		req.Host = tc.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("%s %s%s: %d, want %d", tc.method, tc.host, tc.path, rec.Code, tc.code)
			continue
		}
		if tc.code == 200 && tc.method == "GET" {
			p, err := ParsePolicy(rec.Body.Bytes())
			if err != nil || p.Mode != Enforce || !p.Match("mx.example.org") {
				t.Errorf("served policy %q: %+v, %v", rec.Body.String(), p, err)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("content type %q", ct)
			}
		}
	}
}

// TestCache fetches from a loopback HTTPS server with a certificate from
// the test's own CA and checks the cache rules: a certificate for another
// name is refused, the id decides a new fetch, a lost record keeps the
// cached policy, a failed fetch falls back to it, mode none is no policy,
// a policy past half its max_age is fetched again, and an expired policy
// is gone.
func TestCache(t *testing.T) {
	ca := queuetest.NewCA(t)
	var body atomic.Value
	body.Store("version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 3600\n")
	var fetches atomic.Int32
	var fail atomic.Bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if fail.Load() || r.URL.Path != WellKnownPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(body.Load().(string)))
	}))
	srv.TLS = ca.ServerTLS(t, "mta-sts.example.org", "mta-sts.wrong.test")
	srv.StartTLS()
	defer srv.Close()

	var txt atomic.Value
	txt.Store([]string{"v=STSv1; id=1"})
	now := time.Now()
	c := &Cache{
		LookupTXT: func(_ context.Context, name string) ([]string, error) {
			v := txt.Load().([]string)
			if name != "_mta-sts.example.org" && name != "_mta-sts.other.test" || v == nil {
				return nil, fmt.Errorf("dns TXT %s: %w", name, ErrNoRecord)
			}
			return v, nil
		},
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, srv.Listener.Addr().String())
		},
		RootCAs: ca.Pool(),
		Now:     func() time.Time { return now },
	}
	ctx := context.Background()
	check := func(step, domain string, wantMode Mode, wantCached, wantErr bool, wantFetches int32) {
		t.Helper()
		r := c.Get(ctx, domain)
		mode := Mode("")
		if r.Policy != nil {
			mode = r.Policy.Mode
		}
		if mode != wantMode || r.Cached != wantCached || (r.Err != nil) != wantErr || fetches.Load() != wantFetches {
			t.Fatalf("%s: mode %q cached %v err %v fetches %d; want %q %v err=%v %d", step, mode, r.Cached, r.Err, fetches.Load(), wantMode, wantCached, wantErr, wantFetches)
		}
	}
	// The certificate does not name mta-sts.other.test.
	check("wrong name", "other.test", "", false, true, 0)
	check("first", "example.org", Enforce, false, false, 1)
	check("same id", "example.org", Enforce, true, false, 1)
	now = now.Add(31 * time.Minute) // past half its max_age: refreshed
	check("refresh", "example.org", Enforce, false, false, 2)
	check("refreshed", "example.org", Enforce, true, false, 2)
	txt.Store([]string(nil))
	check("record gone", "example.org", Enforce, true, false, 2)
	txt.Store([]string{"v=STSv1; id=2"})
	body.Store("version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 3600\n")
	check("new id", "example.org", Testing, false, false, 3)
	txt.Store([]string{"v=STSv1; id=3"})
	fail.Store(true)
	check("fetch fails", "example.org", Testing, true, true, 4)
	check("not refetched at once", "example.org", Testing, true, true, 4)
	now = now.Add(10 * time.Minute)
	fail.Store(false)
	body.Store("version: STSv1\nmode: none\nmax_age: 3600\n")
	check("mode none", "example.org", "", false, false, 5)
	txt.Store([]string(nil))
	now = now.Add(2 * time.Hour)
	check("expired, no record", "example.org", "", false, false, 5)
}

// TestCacheFile: a policy fetched before a restart is in force after it,
// even when the TXT record is then hidden; an expired one is not.
func TestCacheFile(t *testing.T) {
	ca := queuetest.NewCA(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 3600\n"))
	}))
	srv.TLS = ca.ServerTLS(t, "mta-sts.example.org")
	srv.StartTLS()
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "mta-sts.json")
	now := time.Now()
	newCache := func(txt []string) *Cache {
		return &Cache{
			LookupTXT: func(context.Context, string) ([]string, error) {
				if txt == nil {
					return nil, ErrNoRecord
				}
				return txt, nil
			},
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, srv.Listener.Addr().String())
			},
			RootCAs: ca.Pool(),
			Now:     func() time.Time { return now },
			File:    file,
		}
	}
	if r := newCache([]string{"v=STSv1; id=1"}).Get(context.Background(), "example.org"); r.Policy == nil || r.Cached {
		t.Fatalf("first fetch: %+v", r)
	}
	srv.Close() // nothing to fetch from any more
	r := newCache(nil).Get(context.Background(), "example.org")
	if r.Policy == nil || r.Policy.Mode != Enforce || !r.Cached {
		t.Fatalf("after a restart, record hidden: %+v", r)
	}
	now = now.Add(2 * time.Hour)
	if r := newCache(nil).Get(context.Background(), "example.org"); r.Policy != nil {
		t.Fatalf("expired policy still in force: %+v", r)
	}
}

// TestFetchRefuses: what a policy server answers besides a policy is no
// policy: a redirect (not followed), another status, another content
// type, a body over MaxPolicyBytes.
func TestFetchRefuses(t *testing.T) {
	good := "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 3600\n"
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr string
	}{
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://mta-sts.example.org/elsewhere.txt", http.StatusFound)
		}, "302"},
		{"not found", http.NotFound, "404"},
		{"html", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(good))
		}, "not text/plain"},
		{"too big", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(good + strings.Repeat("x-pad: "+strings.Repeat("y", 100)+"\n", MaxPolicyBytes/100)))
		}, "over"},
	}
	ca := queuetest.NewCA(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(tc.handler)
			srv.TLS = ca.ServerTLS(t, "mta-sts.example.org")
			srv.StartTLS()
			defer srv.Close()
			c := &Cache{
				LookupTXT: func(context.Context, string) ([]string, error) { return []string{"v=STSv1; id=1"}, nil },
				Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, srv.Listener.Addr().String())
				},
				RootCAs: ca.Pool(),
			}
			r := c.Get(context.Background(), "example.org")
			if r.Policy != nil || r.Err == nil || !strings.Contains(r.Err.Error(), tc.wantErr) {
				t.Fatalf("got %+v, want no policy and an error with %q", r, tc.wantErr)
			}
		})
	}
}
