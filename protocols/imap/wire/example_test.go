package wire_test

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// The shape of the session loop: read a command, answer a refusal or
// dispatch it, flush once per command.
func Example() {
	client := "a1 NOOP\r\na2 FETCH 1:x FLAGS\r\na3 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 7)\r\n"
	var out strings.Builder
	enc := wire.NewEncoder(bufio.NewWriter(&out))
	r := wire.NewReader(bufio.NewReader(strings.NewReader(client)), wire.Limits{},
		func() error { enc.Continue(""); return enc.Flush() })
	for {
		cmd, err := r.ReadCommand()
		var refused *wire.Error
		switch {
		case errors.As(err, &refused):
			enc.Status(refused.Tag, refused.Type, wire.Code(refused.Code), refused.Text)
		case err != nil: // io.EOF here
			enc.Flush()
			fmt.Print(strings.ReplaceAll(out.String(), "\r\n", "\n"))
			return
		default:
			switch args := cmd.Args.(type) {
			case *wire.Fetch:
				w := enc.Fetch(1)
				w.UID(3)
				w.Flags([]imap.Flag{imap.FlagSeen})
				w.ModSeq(args.Options.ChangedSince + 1)
				w.End()
			}
			enc.Status(cmd.Tag, imap.StatusResponseTypeOK, "", fmt.Sprintf("%s completed", cmd.Name))
		}
		enc.Flush()
	}
	// Output:
	// a1 OK NOOP completed
	// a2 BAD [CLIENTBUG] Error in IMAP command FETCH: Invalid sequence set "1:x"
	// * 1 FETCH (UID 3 FLAGS (\Seen) MODSEQ (8))
	// a3 OK UID FETCH completed
}
