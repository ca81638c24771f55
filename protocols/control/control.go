// Package control is the admin channel of a running vmaild: HTTP/1.1 over
// a unix socket, one POST per operation to /v1/<operation> with a JSON
// body, a JSON answer back. The socket's file mode is the access control
// (0600: the daemon's user and root; 0660: its group too); the peer's
// credentials (SO_PEERCRED) name who asked in the log.
//
// The package knows the wire and nothing of what the operations do: the
// daemon registers a Handler per operation, the CLI calls them by name
// with a Client.
package control

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the protocol version, the first element of every path. A
// change that old clients would misread gets a new version; new
// operations and new JSON fields do not.
const Version = 1

// Error codes of a failed call; the HTTP status says the same.
const (
	CodeInvalid   = "invalid"           // 400: the request is malformed or names something impossible
	CodeNotFound  = "not_found"         // 404: no such item or user
	CodeConflict  = "conflict"          // 409: the item is not in a state that allows it (on hold)
	CodeUnknownOp = "unknown_operation" // 404: this daemon does not know the operation (older version)
	CodeInternal  = "internal"          // 500: the daemon failed
)

// Error is a failed call as the client sees it.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"error"`
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with a code, for handlers that want to say
// more than the Server's Classify would.
func Errorf(code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrNoDaemon is returned by Client.Call when nothing listens on the
// socket: the daemon is not running (or not yet).
var ErrNoDaemon = errors.New("control: no running vmaild answers on the control socket")

func status(code string) int {
	switch code {
	case CodeInvalid:
		return 400
	case CodeNotFound, CodeUnknownOp:
		return 404
	case CodeConflict:
		return 409
	}
	return 500
}

// codeOf is the code of an error a handler returned.
func codeOf(err error, classify func(error) string) string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	if classify != nil {
		if c := classify(err); c != "" {
			return c
		}
	}
	return CodeInternal
}

func marshalError(code, msg string) []byte {
	b, _ := json.Marshal(Error{Code: code, Message: msg})
	return b
}
