package imap

import (
	"testing"
)

func TestScratch(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 3; i++ {
		e.deliver(t, "", "Subject: x\r\n\r\nx\r\n")
	}
	r := e.raw(t)
	r.login()
	for _, c := range []string{"A1 EXAMINE INBOX", "A4 FETCH 1 FLAGS", "B4 LSUB \"\" \"*\"", "B5 LIST \"\" \"*\""} {
		r.send(c + "\r\n")
		t.Log(r.until(c[:3]))
	}
}
