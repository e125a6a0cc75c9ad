package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// listenUnix listens on a unix socket readable only by its owner (0600).
// A socket file left by a dead daemon is replaced; one that still answers
// belongs to a running daemon and is an error, so two daemons never fight
// over one node. Connections from a user other than root or the daemon's
// own are closed unserved (see ownerOnly).
func listenUnix(path string, log *slog.Logger) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another petrel daemon is listening there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("socket %s: removing stale socket: %w", path, err)
		}
	}
	// Create the socket with no group/other bits at all, rather than chmod
	// after the fact and leave a window.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	return &ownerOnly{Listener: l, uid: uint32(os.Geteuid()), log: log}, nil
}

// ownerOnly checks each client's uid (SO_PEERCRED) as well as the file
// mode: a socket made reachable by a looser mode or reached through a
// bind mount still serves only root and the daemon's own user.
type ownerOnly struct {
	net.Listener
	uid uint32
	log *slog.Logger
}

func (l *ownerOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && (uid == 0 || uid == l.uid) {
			return c, nil
		}
		l.log.Warn("control socket: refused a client that is neither root nor the daemon's user", "uid", uid, "err", err)
		c.Close()
	}
}

func peerUID(c net.Conn) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("not a unix connection: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) { cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	return cred.Uid, nil
}
