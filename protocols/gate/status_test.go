package gate

import "testing"

// TestStatus counts each listener's connections, and the logged-in ones.
func TestStatus(t *testing.T) {
	g := &Gate{}
	imap := startLineServer(t, g, Service{Name: "imap"})
	smtp := startLineServer(t, g, Service{Name: "smtp", NoLogin: true})
	a, _ := imap.admitted(t, "192.0.2.1")
	imap.admitted(t, "192.0.2.2")
	smtp.admitted(t, "192.0.2.3")
	a.send("AUTH")

	st := g.Status()
	if len(st.Listeners) != 2 || st.Listeners[0].Name != "imap" || st.Listeners[1].Name != "smtp" {
		t.Fatalf("listeners: %+v", st.Listeners)
	}
	if l := st.Listeners[0]; l.Connections != 2 || l.Authenticated != 1 || l.Address == "" {
		t.Errorf("imap: %+v", l)
	}
	if l := st.Listeners[1]; l.Connections != 1 || l.Authenticated != 0 {
		t.Errorf("smtp: %+v", l)
	}
	if st.Connections != 3 || st.Unauthenticated != 1 || st.Closing {
		t.Errorf("totals: %+v", st)
	}
	a.send("QUIT")
	waitFor(t, func() bool { return g.Status().Connections == 2 })
}
