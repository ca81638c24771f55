package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/inbound"
	"github.com/vmaild/vmaild/backend/inbound/clamd"
	"github.com/vmaild/vmaild/backend/inbound/milter"
	"github.com/vmaild/vmaild/backend/inbound/rspamd"
	"github.com/vmaild/vmaild/backend/inbound/spamd"
	"github.com/vmaild/vmaild/userdb"
)

// Default policy of a scanner: the MTA only (submission is our own users'
// mail, LMTP was scanned by the MTA in front), a timeout long enough for
// a loaded scanner, and fail closed.
const defaultScanTimeout = 30 * time.Second

func defaultInbound() InboundConfig {
	mta := func() []string { return []string{delivery.RoleMTA} }
	return InboundConfig{
		Order:  []string{"clamd", "rspamd", "spamd", "milter"},
		Rspamd: RspamdConfig{Roles: mta(), Timeout: defaultScanTimeout, MaxSize: 50 << 20, Oversize: "skip", OnFailure: "tempfail"},
		Spamd:  SpamdConfig{Roles: mta(), Timeout: defaultScanTimeout, MaxSize: 2 << 20, Oversize: "skip", OnFailure: "tempfail"},
		Clamd:  ClamdConfig{OnVirus: "reject", Roles: mta(), Timeout: defaultScanTimeout, MaxSize: 25 << 20, Oversize: "skip", OnFailure: "tempfail"},
		Milter: MilterConfig{Roles: mta(), Timeout: defaultScanTimeout, Oversize: "skip", OnFailure: "tempfail"},
		Junk:   JunkConfig{Folder: delivery.DefaultJunkFolder},
	}
}

// checkNames are the names inbound.order knows.
var checkNames = []string{"clamd", "rspamd", "spamd", "milter"}

// validate checks the inbound keys; building the pipeline cannot fail
// after it.
func (c *InboundConfig) validate() []string {
	var problems []string
	for _, name := range c.Order {
		if !slices.Contains(checkNames, name) {
			problems = append(problems, fmt.Sprintf("inbound.order: %q is not one of %s", name, strings.Join(checkNames, ", ")))
		}
	}
	policy := func(key string, roles []string, oversize, onFailure string) {
		for _, r := range roles {
			switch r {
			case delivery.RoleMTA, delivery.RoleSubmission, delivery.RoleLMTP:
			default:
				problems = append(problems, fmt.Sprintf("inbound.%s.roles: %q is not mta, submission or lmtp", key, r))
			}
		}
		if oversize != "skip" && oversize != "reject" {
			problems = append(problems, fmt.Sprintf("inbound.%s.oversize: %q is not skip or reject", key, oversize))
		}
		if _, err := inbound.ParseFailMode(onFailure); err != nil {
			problems = append(problems, fmt.Sprintf("inbound.%s.on_failure: %v", key, err))
		}
	}
	policy("rspamd", c.Rspamd.Roles, c.Rspamd.Oversize, c.Rspamd.OnFailure)
	policy("spamd", c.Spamd.Roles, c.Spamd.Oversize, c.Spamd.OnFailure)
	policy("clamd", c.Clamd.Roles, c.Clamd.Oversize, c.Clamd.OnFailure)
	policy("milter", c.Milter.Roles, c.Milter.Oversize, c.Milter.OnFailure)
	if u := c.Rspamd.URL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		problems = append(problems, fmt.Sprintf("inbound.rspamd.url: %q is not an http:// or https:// URL", u))
	}
	switch c.Clamd.OnVirus {
	case "reject", "discard", "junk":
	default:
		problems = append(problems, fmt.Sprintf("inbound.clamd.on_virus: %q is not reject, discard or junk", c.Clamd.OnVirus))
	}
	for _, m := range c.Milter.Sockets {
		if name, addr, ok := strings.Cut(m, "="); !ok || name == "" || addr == "" {
			problems = append(problems, fmt.Sprintf("inbound.milter.sockets: %q is not NAME=SOCKET", m))
		}
	}
	if _, err := c.Junk.thresholds(); err != nil {
		problems = append(problems, "inbound.junk.thresholds: "+err.Error())
	}
	return problems
}

// pipeline builds the checks of the SMTP listeners from the configuration,
// in inbound.order; nil when none is configured.
func (c *InboundConfig) pipeline(log *slog.Logger, obs inbound.Observer) *inbound.Pipeline {
	step := func(check inbound.Check, roles []string, timeout time.Duration, maxSize int64, oversize, onFailure string) inbound.Step {
		mode, _ := inbound.ParseFailMode(onFailure)
		return inbound.Step{Check: check, Roles: slices.Clone(roles), Timeout: timeout, MaxSize: maxSize,
			OversizeReject: oversize == "reject", OnFailure: mode}
	}
	steps := map[string][]inbound.Step{}
	if r := c.Rspamd; r.URL != "" {
		// A transport of its own: rspamd is ours to reach directly,
		// whatever HTTP_PROXY the daemon's environment names.
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute}}
		steps["rspamd"] = []inbound.Step{step(&rspamd.Check{URL: r.URL, Password: r.Password, RejectAsJunk: r.RejectAsJunk, Client: client},
			r.Roles, r.Timeout, r.MaxSize, r.Oversize, r.OnFailure)}
		steps["rspamd"][0].SpamScanner = true
	}
	if s := c.Spamd; s.Address != "" {
		steps["spamd"] = []inbound.Step{step(&spamd.Check{Address: s.Address, User: s.User, RejectScore: s.RejectScore},
			s.Roles, s.Timeout, s.MaxSize, s.Oversize, s.OnFailure)}
		steps["spamd"][0].SpamScanner = true
	}
	if cl := c.Clamd; cl.Address != "" {
		found := inbound.Reject
		switch cl.OnVirus {
		case "discard":
			found = inbound.Discard
		case "junk":
			found = inbound.Junk
		}
		steps["clamd"] = []inbound.Step{step(&clamd.Check{Address: cl.Address, Found: found},
			cl.Roles, cl.Timeout, cl.MaxSize, cl.Oversize, cl.OnFailure)}
	}
	for _, sock := range c.Milter.Sockets {
		name, addr, _ := strings.Cut(sock, "=")
		m := c.Milter
		steps["milter"] = append(steps["milter"], step(&milter.Check{Address: addr, CheckName: name},
			m.Roles, m.Timeout, m.MaxSize, m.Oversize, m.OnFailure))
	}
	order := slices.Clone(c.Order)
	for _, name := range checkNames {
		if !slices.Contains(order, name) {
			order = append(order, name)
		}
	}
	p := &inbound.Pipeline{Logger: log, Observer: obs}
	for _, name := range order {
		p.Steps = append(p.Steps, steps[name]...)
		delete(steps, name)
	}
	if len(p.Steps) == 0 {
		return nil
	}
	return p
}

// junkFilter is the delivery filter that files spam into Junk.
func (c JunkConfig) junkFilter() delivery.JunkFolder {
	t, _ := c.thresholds()
	return delivery.JunkFolder{Folder: c.Folder, Threshold: c.Threshold, Thresholds: t}
}

// thresholds reads junk.thresholds: DOMAIN=SCORE or ADDRESS=SCORE, "off"
// as a negative threshold (no filing).
func (c JunkConfig) thresholds() (map[string]float64, error) {
	out := map[string]float64{}
	for _, item := range c.Thresholds {
		key, value, ok := strings.Cut(item, "=")
		key, value = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(value)
		if !ok || key == "" {
			return nil, fmt.Errorf("%q is not DOMAIN=SCORE or ADDRESS=SCORE", item)
		}
		if local, domain, isAddr := strings.Cut(key, "@"); isAddr {
			if local == "" {
				return nil, fmt.Errorf("%q: empty local part", item)
			}
			key = local + "@" + domain
		}
		if _, err := userdb.CanonicalDomain(key[strings.LastIndex(key, "@")+1:]); err != nil {
			return nil, fmt.Errorf("%q: %v", item, err)
		}
		if strings.EqualFold(value, "off") {
			out[key] = -1
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || f < 0 {
			return nil, fmt.Errorf("%q: the score is not a number from 0 or off", item)
		}
		out[key] = f
	}
	return out, nil
}
