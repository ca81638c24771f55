package delivery

import (
	"context"
	"math"
	"net/textproto"
	"strconv"
	"strings"
)

// Verdict is what the checks at the end of DATA (package backend/inbound)
// concluded about a message, carried to the filters in Envelope.Verdict:
// JunkFolder files by it, and Sieve's spamtest and virustest (RFC 5235)
// read it. Nil in the envelope means nothing was checked (submission, LMTP
// without checks), or a queue retry (JunkFolder then reads the fields the
// checks wrote).
type Verdict struct {
	// Spam is the spam scanners' opinion.
	Spam Spam
	// Virus is the virus scanners' opinion.
	Virus Virus
	// Junk says that a check asked for the Junk folder whatever the spam
	// score (an "add header" action of rspamd, DMARC p=quarantine).
	Junk bool
}

// Spam is a spam scanner's score of a message.
type Spam struct {
	// Checked says that a spam scanner looked at the message.
	Checked bool
	// Scanner names it ("rspamd", "spamd").
	Scanner string
	// Score is the scanner's score and Threshold its own score from which
	// it calls a message spam (rspamd's "add header" score, spamd's
	// required score).
	Score, Threshold float64
	// Flag is the scanner's yes or no (X-Spam-Flag).
	Flag bool
}

// Virus is a virus scanner's finding.
type Virus struct {
	// Checked says that a virus scanner looked at the message.
	Checked bool
	// Scanner names it ("clamd").
	Scanner string
	// Found names the virus (clamd's signature name); "" is clean.
	Found string
}

// SpamTest is the value of Sieve's spamtest (RFC 5235 3.2, without
// :percent): 0 not tested, 1 clearly not spam … 10 certainly spam, scaled
// so that the scanner's Threshold is 6 and twice it 10.
func (v *Verdict) SpamTest() int {
	if v == nil || !v.Spam.Checked {
		return 0
	}
	s := v.Spam
	if s.Threshold <= 0 {
		if s.Flag {
			return 10
		}
		return 1
	}
	n := 1 + int(5*s.Score/s.Threshold)
	return max(1, min(10, n))
}

// VirusTest is the value of Sieve's virustest (RFC 5235 3.3): 0 not tested,
// 1 clean, 5 infected.
func (v *Verdict) VirusTest() int {
	switch {
	case v == nil || !v.Virus.Checked:
		return 0
	case v.Virus.Found != "":
		return 5
	}
	return 1
}

// DefaultJunkFolder is the folder JunkFolder files into when not told:
// the name of the \Junk special-use folder of store.DefaultSpecialFolders.
const DefaultJunkFolder = "Junk"

// JunkFolder files a message the checks call spam into the recipient's
// Junk folder (special use \Junk, which the store creates when it is
// missing). A message is spam for a recipient when a check asked for Junk
// (Verdict.Junk), or when its spam score reaches the recipient's
// threshold: Thresholds["user@example.org"], else
// Thresholds["example.org"], else Threshold, and when that is 0 too the
// scanner's own Flag. A threshold below 0 turns filing off for that
// recipient or domain.
type JunkFolder struct {
	// Folder is the folder name; "" is DefaultJunkFolder.
	Folder     string
	Threshold  float64
	Thresholds map[string]float64
}

// Verdict is the checks' verdict on m: the envelope's, or for a
// recipient the queue retries, what the checks wrote into the message.
// Nil: nothing was checked.
func (m *Mail) Verdict() *Verdict {
	v := m.Envelope.Verdict
	if v == nil && m.Envelope.Role == RoleQueue {
		v = verdictOfFields(m.Header)
	}
	return v
}

func (j JunkFolder) Filter(_ context.Context, m *Mail, d *Decision) error {
	v := m.Verdict()
	if v == nil || !j.spam(v, m.Destination.Address) {
		return nil
	}
	d.Folder = j.Folder
	if d.Folder == "" {
		d.Folder = DefaultJunkFolder
	}
	return nil
}

// verdictOfFields reads back the spam verdict the checks wrote into the
// message (X-Spam-Flag, X-Spam-Score; inbound.MarkSpam), for a recipient
// the queue retries: the envelope's verdict did not travel with it. The
// checks removed the sender's own such fields, and on mail that was not
// checked a sender can only send its own message to Junk.
func verdictOfFields(h textproto.MIMEHeader) *Verdict {
	flag := h.Get("X-Spam-Flag")
	if flag == "" {
		return nil
	}
	v := &Verdict{Spam: Spam{Checked: true, Flag: strings.EqualFold(strings.TrimSpace(flag), "YES")}}
	if score, err := strconv.ParseFloat(strings.TrimSpace(h.Get("X-Spam-Score")), 64); err == nil && !math.IsNaN(score) {
		v.Spam.Score = score
	}
	return v
}

func (j JunkFolder) spam(v *Verdict, address string) bool {
	t, ok := j.Thresholds[strings.ToLower(address)]
	if !ok {
		if _, domain, found := strings.Cut(address, "@"); found {
			t, ok = j.Thresholds[strings.ToLower(domain)]
		}
	}
	if !ok {
		t = j.Threshold
	}
	switch {
	case t < 0:
		return false
	case v.Junk:
		return true
	case !v.Spam.Checked:
		return false
	case t == 0:
		return v.Spam.Flag
	}
	return v.Spam.Score >= t
}
