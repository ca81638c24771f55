package gate

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"
)

// AcceptLoop accepts connections on ln (the gate's Listener, or TLS over
// it) and runs serve for each in its own goroutine, until ln fails for
// good. Running out of file descriptors and the like makes it wait,
// doubling up to a second, instead of spinning, as net/http does. It
// returns ErrClosed once the gate is closing.
func (g *Gate) AcceptLoop(ln net.Listener, log *slog.Logger, name string, serve func(net.Conn)) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if g.Closing() {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || temporaryAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				log.Warn(name+" accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		go serve(nc)
	}
}

func temporaryAccept(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "too many open files") || strings.Contains(msg, "resource temporarily unavailable")
}
