// Package managesieve is vmaild's ManageSieve server (RFC 5804, port
// 4190): mail clients (Roundcube's managesieve plugin, Thunderbird
// add-ons, K-9, sieve-connect) list, upload, check, activate, rename and
// delete a user's Sieve scripts with it.
//
// The package knows the wire and nothing about storage: a Backend checks a
// login and hands back the user's Scripts; its errors are classified with
// this package's error values (ErrNonExistent, ErrActive, *QuotaError,
// *ScriptError...), which the server turns into response codes.
//
// Logins go through the shared login service (package login: throttling,
// bounded concurrent verifications) with SASL PLAIN or LOGIN (package
// sasl), with an initial response or the continuation form, and only over
// TLS (STARTTLS) unless the listener is marked insecure. Connections pass
// through the connection gate (package gate), which caps them per client
// network, in total and before login, bounds the time to log in and the
// session, and owns the graceful shutdown. Every command line, quoted
// string and literal is bounded.
package managesieve

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
)

// Backend authenticates a user and opens their scripts.
type Backend interface {
	// Login checks username and password and returns the user's scripts.
	// Errors wrapping userdb.ErrUnavailable answer NO (TRYLATER);
	// anything else is a failed login. ctx ends with the connection.
	Login(ctx context.Context, conn ConnInfo, username, password string) (Scripts, error)
}

// Script is one entry of LISTSCRIPTS.
type Script struct {
	Name   string
	Active bool
}

// Scripts is one user's scripts for the duration of a session. Script
// names are as the client sent them; the Backend refuses those it cannot
// store with a *ScriptError.
type Scripts interface {
	// Account is the canonical account address, for logs and OWNER.
	Account() string
	List(ctx context.Context) ([]Script, error)
	// Get returns a script's source, ErrNonExistent when there is none.
	Get(ctx context.Context, name string) ([]byte, error)
	// Put validates and stores a script (replacing one of that name):
	// *ScriptError for a bad script, *QuotaError when it does not fit.
	Put(ctx context.Context, name string, src []byte) error
	// Check validates a script without storing it.
	Check(ctx context.Context, src []byte) error
	// HaveSpace says whether a script of size octets named name would
	// fit: nil or *QuotaError.
	HaveSpace(ctx context.Context, name string, size int64) error
	// SetActive activates name; "" deactivates the active script.
	SetActive(ctx context.Context, name string) error
	// Delete removes a script: ErrActive for the active one.
	Delete(ctx context.Context, name string) error
	// Rename renames a script: ErrNonExistent, ErrAlreadyExists.
	Rename(ctx context.Context, oldName, newName string) error
	// Close ends the session; it is called exactly once.
	Close() error
}

// ConnInfo describes the client connection for the Backend.
type ConnInfo struct {
	RemoteAddr net.Addr
	LocalAddr  net.Addr
	// IP is the client's address, invalid for non-IP transports.
	IP netip.Addr
	// TLS is non-nil on a TLS connection.
	TLS *tls.ConnectionState
}

// Errors a Scripts implementation returns (wrapped or not).
var (
	ErrNonExistent    = errors.New("no such script")
	ErrAlreadyExists  = errors.New("script already exists")
	ErrActive         = errors.New("the active script cannot be deleted")
	errAuthentication = errors.New("authentication failed")
)

// ScriptError refuses a script or a script name; Msg tells the user what
// is wrong, with the line number for a bad script.
type ScriptError struct{ Msg string }

func (e *ScriptError) Error() string { return e.Msg }

// QuotaLimit says which quota a QuotaError hit.
type QuotaLimit int

// Quota limits (RFC 5804 section 1.3's QUOTA/MAXSCRIPTS, QUOTA/MAXSIZE,
// QUOTA/MAXSTORAGE).
const (
	QuotaOther QuotaLimit = iota
	QuotaMaxScripts
	QuotaMaxSize
	QuotaMaxStorage
)

// QuotaError refuses a script that does not fit the user's quota.
type QuotaError struct {
	Limit QuotaLimit
	Msg   string
}

func (e *QuotaError) Error() string { return e.Msg }

func (l QuotaLimit) code() string {
	switch l {
	case QuotaMaxScripts:
		return "QUOTA/MAXSCRIPTS"
	case QuotaMaxSize:
		return "QUOTA/MAXSIZE"
	case QuotaMaxStorage:
		return "QUOTA/MAXSTORAGE"
	}
	return "QUOTA"
}
