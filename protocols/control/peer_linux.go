package control

import (
	"net"
	"syscall"
)

// peerOf asks the kernel who connected (SO_PEERCRED).
func peerOf(c net.Conn) Peer {
	p := Peer{UID: -1, GID: -1, PID: -1}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return p
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return p
	}
	raw.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			p = Peer{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}
		}
	})
	return p
}
