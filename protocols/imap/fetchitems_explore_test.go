package imap

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmaild/vmaild/internal/testdovecot"
)

func TestExploreDovecot(t *testing.T) {
	if os.Getenv("EXPLORE") == "" {
		t.Skip()
	}
	corpus := fetchCorpus(t)
	srv := testdovecot.Start(t)
	for i, m := range corpus {
		name := fmt.Sprintf("%d.M%dP1.oracle,S=%d:2,", 1700000000+i, i, len(m.raw))
		p := filepath.Join(srv.Maildir, "cur", name)
		if err := os.WriteFile(p, m.raw, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, corpusDate(i), corpusDate(i))
	}
	c := srv.Login(t)
	if _, err := c.Run("SELECT INBOX"); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{os.Getenv("EXPLORE")} {
		out, err := c.RunRaw(cmd)
		fmt.Printf("%s\n%s\n", err, out)
		if err != nil {
			b, _ := os.ReadFile(srv.Log)
			fmt.Printf("%s", b)
		}
	}
	for i, m := range corpus {
		fmt.Println(i+1, m.name)
	}
}
