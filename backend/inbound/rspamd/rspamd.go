// Package rspamd is the inbound check that asks rspamd about a message
// over its HTTP protocol (POST /checkv2), passing the envelope's facts as
// rspamd's request headers (IP, Helo, From, Rcpt, User, Queue-Id,
// TLS-Version, MTA-Name), and turns rspamd's action into the verdict:
//
//	reject          → reject 554 5.7.1 with rspamd's SMTP message (or junk, RejectAsJunk)
//	soft reject     → tempfail 451 4.7.1
//	add header,
//	rewrite subject → junk
//	greylist,
//	no action       → accept
//
// The score goes into the verdict and the X-Spam-* fields (see
// inbound.MarkSpam; X-Spam-Report lists the symbols with their scores),
// and the fields rspamd's milter_headers module asks
// for are added or removed as it says.
package rspamd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/inbound"
)

// Check asks the rspamd normal worker at URL.
type Check struct {
	// URL is the worker's base URL, e.g. http://127.0.0.1:11333.
	URL string
	// Password, when set, is sent as the Password header (rspamd's
	// "password" of the worker).
	Password string
	// RejectAsJunk files what rspamd would reject into Junk instead.
	RejectAsJunk bool
	// Client sends the request; nil is a client of its own (the check's
	// timeout bounds each request through its context).
	Client *http.Client
}

// maxResponse bounds rspamd's answer.
const maxResponse = 4 << 20

func (c *Check) Name() string { return "rspamd" }

func (c *Check) Check(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+"/checkv2", m.Reader())
	if err != nil {
		return fmt.Errorf("rspamd request: %w", err)
	}
	req.ContentLength = m.Data.Size()
	h := req.Header
	if m.ClientIP.IsValid() {
		h.Set("IP", m.ClientIP.Unmap().String())
	}
	set := func(k, val string) {
		if val != "" {
			h.Set(k, val)
		}
	}
	set("Helo", m.Helo)
	set("From", m.From)
	for _, r := range m.Recipients {
		h.Add("Rcpt", r)
	}
	set("User", m.User)
	set("Queue-Id", m.ID)
	set("TLS-Version", m.TLS)
	set("MTA-Name", m.Hostname)
	set("Password", c.Password)
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("rspamd: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("rspamd: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("rspamd: %s: %.200s", resp.Status, body)
	}
	r, err := ParseResult(body)
	if err != nil {
		return err
	}
	c.apply(m, v, r)
	return nil
}

// apply turns rspamd's result into the verdict.
func (c *Check) apply(m *inbound.Message, v *inbound.Verdict, r *Result) {
	spam := r.Action == "reject" || r.Action == "add header" || r.Action == "rewrite subject"
	inbound.MarkSpam(m, v, delivery.Spam{Checked: true, Scanner: "rspamd", Score: r.Score, Threshold: r.RequiredScore, Flag: spam},
		r.symbolNames(), r.report())
	for _, name := range r.Milter.removeNames() {
		// rspamd's remove_headers: 0 removes every copy, n the n-th.
		n := r.Milter.RemoveHeaders[name]
		count := len(m.Header().Values(name))
		for i := 1; i <= count; i++ {
			if n == 0 || n == i {
				v.Remove(name, i)
			}
		}
	}
	for _, f := range r.Milter.AddHeaders {
		v.Add(f.Name, f.Value)
	}
	v.Log(slog.String("action", r.Action))
	text := r.Messages["smtp_message"]
	switch r.Action {
	case "reject":
		if c.RejectAsJunk {
			v.Set(inbound.Junk, 0, "", "")
			return
		}
		if text == "" {
			text = "Spam message rejected"
		}
		v.Reject(554, "5.7.1", text)
	case "soft reject":
		if text == "" {
			text = "Try again later"
		}
		v.Tempfail(451, "4.7.1", text)
	case "add header", "rewrite subject":
		v.Set(inbound.Junk, 0, "", "")
	}
}

// Result is what rspamd answers to /checkv2 (the parts used here).
type Result struct {
	Action        string            `json:"action"`
	Score         float64           `json:"score"`
	RequiredScore float64           `json:"required_score"`
	Symbols       map[string]Symbol `json:"symbols"`
	Messages      map[string]string `json:"messages"`
	Milter        Milter            `json:"milter"`
	Skipped       bool              `json:"is_skipped"`
}

// Symbol is one rule that matched.
type Symbol struct {
	Name  string  `json:"name"`
	Score float64 `json:"score"`
}

// Milter is the milter block of the answer: header fields rspamd's
// milter_headers module wants added or removed.
type Milter struct {
	AddHeaders    []delivery.HeaderField
	RemoveHeaders map[string]int
}

// actions are the actions rspamd knows.
var actions = []string{"no action", "greylist", "add header", "rewrite subject", "soft reject", "reject"}

// ParseResult reads rspamd's JSON answer. An answer without a known
// action is an error: the message was not checked.
func ParseResult(b []byte) (*Result, error) {
	var raw struct {
		Action        string            `json:"action"`
		Score         float64           `json:"score"`
		RequiredScore float64           `json:"required_score"`
		Symbols       map[string]Symbol `json:"symbols"`
		Messages      map[string]any    `json:"messages"`
		Skipped       bool              `json:"is_skipped"`
		Milter        struct {
			AddHeaders    map[string]json.RawMessage `json:"add_headers"`
			RemoveHeaders map[string]int             `json:"remove_headers"`
		} `json:"milter"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("rspamd: malformed answer: %w", err)
	}
	if !slices.Contains(actions, raw.Action) {
		return nil, fmt.Errorf("rspamd: unknown action %q", raw.Action)
	}
	r := &Result{Action: raw.Action, Score: raw.Score, RequiredScore: raw.RequiredScore,
		Symbols: raw.Symbols, Skipped: raw.Skipped, Messages: map[string]string{}}
	for k, val := range raw.Messages {
		if s, ok := val.(string); ok {
			r.Messages[k] = s
		}
	}
	r.Milter.RemoveHeaders = raw.Milter.RemoveHeaders
	names := make([]string, 0, len(raw.Milter.AddHeaders))
	for name := range raw.Milter.AddHeaders {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !fieldName(name) {
			return nil, fmt.Errorf("rspamd: bad header field name %q", name)
		}
		values, err := headerValues(raw.Milter.AddHeaders[name])
		if err != nil {
			return nil, fmt.Errorf("rspamd: header %s: %w", name, err)
		}
		for _, val := range values {
			r.Milter.AddHeaders = append(r.Milter.AddHeaders, delivery.HeaderField{Name: name, Value: val})
		}
	}
	return r, nil
}

// headerValues reads one add_headers entry: a string, {"value": …,
// "order": n}, or a list of those.
func headerValues(raw json.RawMessage) ([]string, error) {
	if s, ok := headerValue(raw); ok {
		return []string{s}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("neither a string, an object with a value nor a list")
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := headerValue(item)
		if !ok {
			return nil, errors.New("a list item is neither a string nor an object with a value")
		}
		out = append(out, s)
	}
	return out, nil
}

func headerValue(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var obj struct {
		Value *string `json:"value"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Value != nil {
		return *obj.Value, true
	}
	return "", false
}

// fieldName accepts RFC 5322 field names: printable ASCII but colon.
func fieldName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == ':' {
			return false
		}
	}
	return s != ""
}

func (r *Result) symbolNames() []string {
	names := make([]string, 0, len(r.Symbols))
	for name := range r.Symbols {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// report lists the symbols with their scores, the details an admin reads
// to see why a message scored as it did.
func (r *Result) report() string {
	var b strings.Builder
	for i, name := range r.symbolNames() {
		if i > 0 {
			b.WriteString(",\n\t")
		}
		fmt.Fprintf(&b, "%s(%.2f)", name, r.Symbols[name].Score)
	}
	return b.String()
}

func (m Milter) removeNames() []string {
	names := make([]string, 0, len(m.RemoveHeaders))
	for name := range m.RemoveHeaders {
		if fieldName(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}
