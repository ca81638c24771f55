// Package pop3 is vmaild's POP3 server: RFC 1939 with the extensions mail
// clients actually use — CAPA and response codes (RFC 2449, 3206), STLS
// (RFC 2595) and AUTH with SASL PLAIN/LOGIN (RFC 5034). No chosen library
// exists for POP3, so this one is small and exact.
//
// The package knows the wire and nothing about storage (it borrows only the
// store's CRLF normaliser, so that a size the store records is the size
// RETR sends): a Backend checks a
// login and hands back a Maildrop, a stable snapshot of one account's
// messages. Deletions are collected during the session and handed to the
// Maildrop only in the UPDATE state, after QUIT; a connection that drops or
// a server that shuts down deletes nothing.
//
// One session per maildrop: the Server keeps a lock table keyed by
// Maildrop.Account (shareable between listeners through Server.Locks, so 110
// and 995 exclude each other). A second login gets -ERR [IN-USE]. A Backend
// may also refuse with ErrInUse itself, for locks that must hold beyond one
// process.
//
// Connections pass through the connection gate (package gate), which caps
// them per client network, in total and before login (refused with
// -ERR [SYS/TEMP]), bounds the time to log in and the session, and owns the
// graceful shutdown.
package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
)

// Backend authenticates a user and opens their maildrop.
type Backend interface {
	// Login checks username and password (as the client typed them) and
	// returns the maildrop. Errors: wrapping userdb.ErrUnavailable answers
	// -ERR [SYS/TEMP] (try later), ErrInUse answers -ERR [IN-USE], anything
	// else -ERR [AUTH]. ctx is cancelled if the client disconnects.
	Login(ctx context.Context, conn ConnInfo, username, password string) (Maildrop, error)
}

// Maildrop is one account's mailbox for the duration of a session.
type Maildrop interface {
	// Account is the canonical account address: the lock key, and the name
	// in logs.
	Account() string
	// Messages returns the session's snapshot, called once after login.
	// Message numbers in the protocol are positions in this slice plus one.
	Messages(ctx context.Context) ([]Message, error)
	// Open returns the content of Messages()[i] as stored; the server
	// normalises line endings and dot-stuffs on the way out.
	Open(ctx context.Context, i int) (io.ReadCloser, error)
	// Delete removes the messages with these UIDs. It is called at most
	// once, in the UPDATE state, and only with a non-empty list.
	Delete(ctx context.Context, uids []string) error
	// Close ends the session; it is always called exactly once.
	Close() error
}

// Message describes one message of the snapshot.
type Message struct {
	// UID is the message's unique id, stable across sessions (a maildir
	// base name, say). UIDL needs 1 to 70 octets of 0x21..0x7E; a UID
	// outside that is shown as "h" plus hex of its SHA-256 prefix, which is
	// just as stable, and Delete still receives the original.
	UID string
	// Size is the message's size as RETR sends it before dot-stuffing: with
	// every line ending in CRLF and a final CRLF added when the content
	// lacks one (see Size). vmaild's store knows it without reading the
	// message (Dovecot's ,W= in the file name, or its index: see
	// store.Folder.VirtualSizes), so STAT and LIST never read message
	// bodies.
	Size int64
}

// ConnInfo describes the client connection for the Backend's logs and
// policies.
type ConnInfo struct {
	RemoteAddr net.Addr
	LocalAddr  net.Addr
	// IP is the client's address, invalid for non-IP transports.
	IP netip.Addr
	// TLS is non-nil on a TLS connection (implicit or after STLS).
	TLS *tls.ConnectionState
}

// ErrInUse is returned (wrapped) by Backend.Login when the maildrop is
// locked by another session.
var ErrInUse = errors.New("maildrop in use")
