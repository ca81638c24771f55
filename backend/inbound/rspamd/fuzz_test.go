package rspamd

import "testing"

// FuzzParseResult: whatever rspamd (or something in its place) answers,
// the parser returns a result with a known action or an error, and never
// panics.
func FuzzParseResult(f *testing.F) {
	for _, seed := range []string{
		`{"is_skipped":false,"score":0.0,"required_score":15.0,"action":"no action","symbols":{},"messages":{},"message-id":"undef","time_real":0.085567}`,
		`{"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE","score":0.0,"metric_score":0.0}},"messages":{"smtp_message":"Gtube pattern"}}`,
		`{"action":"add header","score":7.5,"milter":{"add_headers":{"X-Spamd-Result":"default: False [7.50 / 15.00]","X-Rspamd-Server":{"value":"mx","order":0},"X-Multi":["a",{"value":"b"}]},"remove_headers":{"X-Spam":0}}}`,
		`{"action":"soft reject","messages":{"smtp_message":["not","a string"]}}`,
		`{"action":"greylist"}`,
		`{"action":"unknown"}`,
		`[1,2,3]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResult(b)
		if err != nil {
			return
		}
		found := false
		for _, a := range actions {
			found = found || a == r.Action
		}
		if !found {
			t.Fatalf("action %q accepted", r.Action)
		}
		for _, h := range r.Milter.AddHeaders {
			if !fieldName(h.Name) {
				t.Fatalf("field name %q accepted", h.Name)
			}
		}
	})
}
