package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestControlSocketRefusesOtherUsers: the control socket is 0600 and owned
// by the daemon's user (root), so a real unprivileged user (nobody) cannot
// connect; and if the file mode is loosened, the peer-credential check
// still closes nobody's connection unserved while root is served.
func TestControlSocketRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the client runs as the unprivileged user nobody")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// A directory nobody may enter (t.TempDir's parents are 0700), holding
	// a copy of this test binary it may run.
	dir, err := os.MkdirTemp("", "petrel-socket-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(dir, "client")
	if err := os.WriteFile(helper, self, 0o755); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "petrel.sock")
	l, err := listenUnix(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello")) //nolint:errcheck // the client reports what it got
			c.Close()
		}
	}()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("socket mode %v owner %d, want 0600 and root", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid)
	}

	asNobody := func() string {
		cmd := exec.Command(helper, "-test.run=^TestSocketClientHelper$")
		cmd.Env = append(os.Environ(), "PETREL_SOCKET_CLIENT="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	if out := asNobody(); !strings.Contains(out, "permission denied") {
		t.Errorf("nobody on a 0600 socket: %s", out)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if out := asNobody(); !strings.Contains(out, "read 0 bytes") {
		t.Errorf("nobody on a loosened socket: %s", out)
	}
	if got := dialRead(path); got != "read 5 bytes" {
		t.Errorf("root: %s", got)
	}
}

// TestSocketClientHelper is the client TestControlSocketRefusesOtherUsers
// runs as another user.
func TestSocketClientHelper(t *testing.T) {
	path := os.Getenv("PETREL_SOCKET_CLIENT")
	if path == "" {
		t.Skip("only run by TestControlSocketRefusesOtherUsers")
	}
	fmt.Println(dialRead(path))
}

func dialRead(path string) string {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck // a failed read says it all
	b, _ := io.ReadAll(c)
	return fmt.Sprintf("read %d bytes", len(b))
}
