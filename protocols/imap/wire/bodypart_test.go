package wire

import "testing"

// TestFetchBodyPart checks BODY and BODYSTRUCTURE as written from a
// BodyPart: parameters in their order, names as given, NIL where
// absent, an empty multipart as one empty text part.
func TestFetchBodyPart(t *testing.T) {
	id, disp := "<id@x>", "attachment"
	text := &BodyPart{Type: "TEXT", Subtype: "Plain", Params: []Param{{"Format", "flowed"}, {"charset", "us-ascii"}},
		ID: &id, Encoding: "QUOTED-PRINTABLE", Size: 12, Lines: 2, HasLines: true,
		Disposition: &disp, DispositionParams: []Param{{"filename", `a "b"`}}, Language: []string{"en"}}
	subject := "s"
	msg := &BodyPart{Type: "message", Subtype: "rfc822", Encoding: "7bit", Size: 40, Lines: 3, HasLines: true,
		Envelope: &Envelope{Subject: &subject}, Message: text}
	for _, tc := range []struct {
		name     string
		p        *BodyPart
		extended bool
		want     string
	}{
		{"text", text, false, `BODY ("TEXT" "Plain" ("Format" "flowed" "charset" "us-ascii") "<id@x>" NIL "QUOTED-PRINTABLE" 12 2)`},
		{"text extended", text, true, `BODYSTRUCTURE ("TEXT" "Plain" ("Format" "flowed" "charset" "us-ascii") "<id@x>" NIL "QUOTED-PRINTABLE" 12 2 NIL ("attachment" ("filename" "a \"b\"")) ("en") NIL)`},
		{"message", msg, false, `BODY ("message" "rfc822" NIL NIL NIL "7bit" 40 (NIL "s" NIL NIL NIL NIL NIL NIL NIL NIL) ("TEXT" "Plain" ("Format" "flowed" "charset" "us-ascii") "<id@x>" NIL "QUOTED-PRINTABLE" 12 2) 3)`},
		{"empty multipart", &BodyPart{Multipart: true, Subtype: "mixed", Params: []Param{{"boundary", "b"}}}, true,
			`BODYSTRUCTURE (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)`},
		{"octet-stream", &BodyPart{Type: "application", Subtype: "octet-stream", Encoding: "base64", Size: 4}, false,
			`BODY ("application" "octet-stream" NIL NIL NIL "base64" 4)`},
	} {
		got := encode(false, func(e *Encoder) {
			w := e.Fetch(1)
			w.BodyPart(tc.p, tc.extended)
			w.End()
		})
		if want := "* 1 FETCH (" + tc.want + ")\r\n"; got != want {
			t.Errorf("%s:\n got  %q\n want %q", tc.name, got, want)
		}
	}
	got := encode(false, func(e *Encoder) {
		w := e.Fetch(2)
		w.FlagNames([]string{`\Seen`, "$Junk"})
		w.NumberItem("BINARY.SIZE[1]", 7)
		w.End()
	})
	if want := "* 2 FETCH (FLAGS (\\Seen $Junk) BINARY.SIZE[1] 7)\r\n"; got != want {
		t.Errorf("flags and number items: %q, want %q", got, want)
	}
}
