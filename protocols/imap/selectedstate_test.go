package imap

import (
	"strings"
	"testing"
)

// TestSelectedFolderCommands checks the session state around commands
// that touch the selected folder itself: a refused DELETE leaves the
// folder selected, and this session's own RENAME of it is answered with
// OK, not a BYE.
func TestSelectedFolderCommands(t *testing.T) {
	tests := []struct {
		name  string
		steps []string // commands; each answer's tagged line must start with want
		want  []string
	}{
		{
			name:  "refused DELETE keeps the selection",
			steps: []string{"A1 SELECT INBOX", "A2 DELETE INBOX", "A3 FETCH 1 FLAGS"},
			want:  []string{"A1 OK", "A2 NO", "A3 OK"},
		},
		{
			name:  "DELETE of the selected folder unselects",
			steps: []string{"A1 CREATE Foo", "A2 SELECT Foo", "A3 DELETE Foo", "A4 CHECK"},
			want:  []string{"A1 OK", "A2 OK", "A3 OK", "A4 BAD"},
		},
		{
			name:  "RENAME of the selected folder",
			steps: []string{"A1 CREATE Foo", "A2 SELECT Foo", "A3 RENAME Foo Bar", "A4 NOOP"},
			want:  []string{"A1 OK", "A2 OK", "A3 OK", "A4 OK"},
		},
		{
			name:  "RENAME of the selected folder's parent",
			steps: []string{"A1 CREATE Foo/Sub", "A2 SELECT Foo/Sub", "A3 RENAME Foo Bar", "A4 NOOP"},
			want:  []string{"A1 OK", "A2 OK", "A3 OK", "A4 OK"},
		},
		{
			name:  "RENAME of the selected INBOX",
			steps: []string{"A1 SELECT INBOX", "A2 RENAME INBOX Old", "A3 FETCH 1:* FLAGS"},
			want:  []string{"A1 OK", "A2 OK", "A3 OK"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.deliver(t, "INBOX", "Subject: a\r\n\r\nx\r\n")
			r := e.raw(t)
			r.login()
			for i, s := range tt.steps {
				r.send(s + "\r\n")
				l := r.until(s[:3])
				if got := l[len(l)-1]; !strings.HasPrefix(got, tt.want[i]) {
					t.Fatalf("%s: %q, want %s", s, l, tt.want[i])
				}
			}
		})
	}
}
