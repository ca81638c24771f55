package dnsrecords

import (
	"slices"
	"testing"
)

// FuzzCompareTXT: whatever TXT data a resolver hands back, the comparison
// answers one of its statuses without panicking, and an answer equal to
// the expected record is ok.
func FuzzCompareTXT(f *testing.F) {
	s := testSettings()
	expected := Expected(s)
	for _, r := range expected {
		if r.Type == "TXT" {
			f.Add(r.Value, "google-site-verification=x")
		}
	}
	f.Add("v=spf1 mx ~all", "v=spf1 a -all")
	f.Add("v=DMARC1;;;p", "=;=;=")
	f.Add("v=STSv1; id=", "v=stsv1;id=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
	f.Add("v=DKIM1; p=", "k=rsa;p= A B C")
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, r := range expected {
			if r.Type != "TXT" {
				continue
			}
			st, found, _ := compareTXT(r, []string{a, b})
			if !slices.Contains([]string{StatusOK, StatusMissing, StatusWrong}, st) {
				t.Fatalf("%s: status %q", r.Kind, st)
			}
			if len(found) > 2 {
				t.Fatalf("%s: found %q from two answers", r.Kind, found)
			}
			if st, _, _ := compareTXT(r, []string{r.Value}); st != StatusOK {
				t.Fatalf("%s: the expected value itself is %s", r.Kind, st)
			}
		}
	})
}
