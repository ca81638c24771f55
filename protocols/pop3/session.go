package pop3

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"time"
)

// command runs one command line.
func (c *conn) command(line []byte) {
	keyword, rest, _ := bytes.Cut(line, []byte(" "))
	cmd := strings.ToUpper(string(keyword))
	args := strings.Fields(string(rest))

	// RFC 1939: after USER, only PASS (or QUIT) may follow.
	if cmd != "PASS" {
		c.user = ""
	}

	switch cmd {
	case "CAPA":
		c.capa()
		return
	case "QUIT":
		c.quitCommand(args)
		return
	}
	if c.state == authorization {
		switch cmd {
		case "USER":
			c.userCommand(strings.TrimSpace(string(rest)))
		case "PASS":
			// The password is the rest of the line, spaces and all.
			c.passCommand(string(rest))
		case "AUTH":
			c.authCommand(args)
		case "STLS":
			c.stls(args)
		case "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL":
			c.bad("-ERR " + cmd + " is only valid after login")
		default:
			c.unknown(keyword)
		}
		return
	}
	switch cmd {
	case "STAT":
		if c.noArgs(args) {
			n, size := c.count()
			c.reply("+OK " + strconv.Itoa(n) + " " + strconv.FormatInt(size, 10))
		}
	case "LIST":
		c.list(args)
	case "UIDL":
		c.uidl(args)
	case "RETR":
		if len(args) != 1 {
			c.bad("-ERR usage: RETR message-number")
			return
		}
		if i, ok := c.message(args[0]); ok {
			c.retr(i, -1)
		}
	case "TOP":
		c.top(args)
	case "DELE":
		if len(args) != 1 {
			c.bad("-ERR usage: DELE message-number")
			return
		}
		if i, ok := c.message(args[0]); ok {
			c.msgs[i].deleted = true
			c.reply("+OK message " + strconv.Itoa(i+1) + " deleted")
		}
	case "NOOP":
		if c.noArgs(args) {
			c.reply("+OK")
		}
	case "RSET":
		if c.noArgs(args) {
			for i := range c.msgs {
				c.msgs[i].deleted = false
			}
			n, size := c.count()
			c.reply("+OK maildrop has " + strconv.Itoa(n) + " messages (" + strconv.FormatInt(size, 10) + " octets)")
		}
	case "USER", "PASS", "AUTH":
		c.bad("-ERR already logged in")
	case "STLS":
		c.bad("-ERR STLS is only valid before login")
	default:
		c.unknown(keyword)
	}
}

func (c *conn) unknown(keyword []byte) {
	if len(keyword) == 0 {
		c.bad("-ERR empty command")
		return
	}
	c.bad("-ERR unknown command")
}

func (c *conn) noArgs(args []string) bool {
	if len(args) > 0 {
		c.bad("-ERR this command takes no arguments")
		return false
	}
	return true
}

func (c *conn) capa() {
	var b strings.Builder
	b.WriteString("+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n")
	if c.state == authorization {
		if c.authAllowed() {
			b.WriteString("USER\r\nSASL PLAIN LOGIN\r\n")
		}
		if c.srv.tlsConfig != nil && c.tls == nil {
			b.WriteString("STLS\r\n")
		}
	}
	b.WriteString("IMPLEMENTATION vmaild\r\n.")
	c.reply(b.String())
}

// count returns the number and total size of the undeleted messages.
func (c *conn) count() (n int, size int64) {
	for _, m := range c.msgs {
		if !m.deleted {
			n++
			size += m.size
		}
	}
	return n, size
}

// message parses a message number that must name an undeleted message; it
// answers the error itself.
func (c *conn) message(arg string) (int, bool) {
	if !digits(arg) {
		c.bad("-ERR invalid message number")
		return 0, false
	}
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 || n > len(c.msgs) {
		c.reply("-ERR no such message, only " + strconv.Itoa(len(c.msgs)) + " messages in maildrop")
		return 0, false
	}
	if c.msgs[n-1].deleted {
		c.reply("-ERR message " + arg + " already deleted")
		return 0, false
	}
	return n - 1, true
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (c *conn) list(args []string) {
	switch len(args) {
	case 0:
		n, size := c.count()
		c.reply("+OK " + strconv.Itoa(n) + " messages (" + strconv.FormatInt(size, 10) + " octets)")
		for i, m := range c.msgs {
			if !m.deleted {
				c.reply(strconv.Itoa(i+1) + " " + strconv.FormatInt(m.size, 10))
			}
		}
		c.reply(".")
	case 1:
		if i, ok := c.message(args[0]); ok {
			c.reply("+OK " + strconv.Itoa(i+1) + " " + strconv.FormatInt(c.msgs[i].size, 10))
		}
	default:
		c.bad("-ERR usage: LIST [message-number]")
	}
}

func (c *conn) uidl(args []string) {
	switch len(args) {
	case 0:
		c.reply("+OK unique-id listing follows")
		for i, m := range c.msgs {
			if !m.deleted {
				c.reply(strconv.Itoa(i+1) + " " + m.wireUID)
			}
		}
		c.reply(".")
	case 1:
		if i, ok := c.message(args[0]); ok {
			c.reply("+OK " + strconv.Itoa(i+1) + " " + c.msgs[i].wireUID)
		}
	default:
		c.bad("-ERR usage: UIDL [message-number]")
	}
}

func (c *conn) top(args []string) {
	if len(args) != 2 {
		c.bad("-ERR usage: TOP message-number lines")
		return
	}
	if !digits(args[1]) {
		c.bad("-ERR invalid number of lines")
		return
	}
	i, ok := c.message(args[0])
	if !ok {
		return
	}
	lines, err := strconv.Atoi(args[1])
	if err != nil {
		// Only overflow gets here: more lines than any message has.
		lines = int(^uint(0) >> 1)
	}
	c.retr(i, lines)
}

// retr sends message i, whole (bodyLines < 0) or as TOP.
func (c *conn) retr(i, bodyLines int) {
	var rc io.ReadCloser
	err := c.background(func(ctx context.Context) error {
		var err error
		rc, err = c.md.Open(ctx, i)
		return err
	})
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Error("pop3 open message", "uid", c.msgs[i].uid, "err", err)
		}
		c.reply("-ERR [SYS/TEMP] cannot read message " + strconv.Itoa(i+1))
		return
	}
	defer rc.Close()
	if bodyLines < 0 {
		c.reply("+OK " + strconv.FormatInt(c.msgs[i].size, 10) + " octets")
	} else {
		c.reply("+OK top of message follows")
	}
	n, err := transfer(c.bw, rc, true, bodyLines)
	if err != nil {
		// Part of the message is on the wire; the only honest way out is
		// to drop the connection, which deletes nothing.
		c.log.Warn("pop3 send message", "uid", c.msgs[i].uid, "err", err)
		c.quit = true
		c.nc().Close()
		return
	}
	c.reply(".")
	if bodyLines < 0 && n != c.msgs[i].size {
		c.log.Warn("pop3 message size differs from the maildrop's",
			"uid", c.msgs[i].uid, "listed", c.msgs[i].size, "sent", n)
	}
}

// quitCommand ends the session; after login it enters UPDATE and applies the
// deletions, the only place they ever are applied.
func (c *conn) quitCommand(args []string) {
	if !c.noArgs(args) {
		return
	}
	c.quit = true
	bye := "+OK " + c.srv.hostname() + " POP3 server signing off"
	if c.state != transaction {
		c.reply(bye)
		return
	}
	var uids []string
	for _, m := range c.msgs {
		if m.deleted {
			uids = append(uids, m.uid)
		}
	}
	if len(uids) > 0 {
		// The client asked for these deletions with QUIT; they go ahead
		// even if it disconnects or the server shuts down meanwhile.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 2*time.Minute)
		err := c.md.Delete(ctx, uids)
		cancel()
		if err != nil {
			c.log.Error("pop3 update", "deleted", len(uids), "err", err)
			c.reply("-ERR [SYS/TEMP] some deleted messages not removed")
			return
		}
	}
	c.log.Info("pop3 logout", "deleted", len(uids))
	c.reply(bye + " (" + strconv.Itoa(len(c.msgs)-len(uids)) + " messages left)")
}
