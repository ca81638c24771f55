package bridge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// Socket says where a bridge listens and, for a unix socket, who may
// connect: Dovecot's unix_listener user, group and mode.
type Socket struct {
	// Address is a unix socket path (starting with /) or a loopback
	// host:port.
	Address string
	// User and Group own the unix socket ("" keeps vmaild's own); names
	// or numbers.
	User, Group string
	// Mode is the unix socket's permission bits (0: 0660).
	Mode os.FileMode
}

// IsUnix reports whether the address is a unix socket path.
func (s Socket) IsUnix() bool { return strings.HasPrefix(s.Address, "/") }

// Check says what is wrong with s, without touching the system beyond
// looking up the user and group.
func (s Socket) Check() error {
	if s.IsUnix() {
		if s.Mode&^0o777 != 0 {
			return fmt.Errorf("mode %#o is not permission bits", s.Mode)
		}
		if _, _, err := s.owner(); err != nil {
			return err
		}
		return nil
	}
	host, _, err := net.SplitHostPort(s.Address)
	if err != nil {
		return fmt.Errorf("%q is neither a unix socket path nor host:port", s.Address)
	}
	if a, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !a.IsLoopback()) {
		// The bridge answers whoever connects: passwords checked, users
		// listed. Only local processes may ask.
		return fmt.Errorf("%q: TCP is for loopback addresses only (127.0.0.1, ::1)", s.Address)
	}
	return nil
}

// owner resolves User and Group; -1 keeps the current one.
func (s Socket) owner() (uid, gid int, err error) {
	uid, gid = -1, -1
	if s.User != "" {
		if uid, err = strconv.Atoi(s.User); err != nil {
			u, lerr := user.Lookup(s.User)
			if lerr != nil {
				return 0, 0, fmt.Errorf("user %q: %w", s.User, lerr)
			}
			uid, _ = strconv.Atoi(u.Uid)
		}
	}
	if s.Group != "" {
		if gid, err = strconv.Atoi(s.Group); err != nil {
			g, lerr := user.LookupGroup(s.Group)
			if lerr != nil {
				return 0, 0, fmt.Errorf("group %q: %w", s.Group, lerr)
			}
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	return uid, gid, nil
}

// Listen opens the socket: a unix socket (its folder made when missing, a
// stale socket from an earlier run replaced) with its owner and mode set before anyone may connect, or a
// loopback TCP port.
func Listen(s Socket) (net.Listener, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	if !s.IsUnix() {
		return net.Listen("tcp", s.Address)
	}
	uid, gid, err := s.owner()
	if err != nil {
		return nil, err
	}
	mode := s.Mode
	if mode == 0 {
		mode = 0o660
	}
	// Like Dovecot's base_dir, the folder is made when missing: /run is
	// emptied at every boot.
	if err := os.MkdirAll(filepath.Dir(s.Address), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(s.Address); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", s.Address)
		}
		os.Remove(s.Address)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.Listen("unix", s.Address)
	if err != nil {
		return nil, err
	}
	// Until this chmod the socket has the umask's mode: the folder holding
	// it (/run/vmaild) decides who can reach it meanwhile.
	if err := os.Chmod(s.Address, mode); err != nil {
		ln.Close()
		return nil, err
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(s.Address, uid, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket owner: %w", err)
		}
	}
	return ln, nil
}
