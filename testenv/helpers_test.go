package testenv

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ioTimeout bounds every dial, read and write of the tests.
const ioTimeout = 5 * time.Second

// echoServer is a TCP listener inside a namespace that answers each line
// with its tag, ":" and the line, and records the peers it saw.
type echoServer struct {
	ln    net.Listener
	addr  netip.AddrPort
	peers chan netip.AddrPort
}

// startEcho listens in n on addr (port chosen by the kernel) until the test
// ends.
func startEcho(t *testing.T, n *Namespace, addr netip.Addr, tag string) *echoServer {
	t.Helper()
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s on %s: %v", n.Name(), addr, err)
	}
	s := &echoServer{
		ln:    ln,
		addr:  ln.Addr().(*net.TCPAddr).AddrPort(),
		peers: make(chan netip.AddrPort, 16),
	}
	wait := Serve(ln.Accept, func(c net.Conn) {
		select {
		case s.peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort():
		default:
		}
		_ = c.SetDeadline(time.Now().Add(ioTimeout))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		_, _ = c.Write([]byte(tag + ":" + line))
	})
	t.Cleanup(func() {
		ln.Close()
		wait()
	})
	return s
}

// roundTrip dials dst from inside n, sends msg and returns the answer
// line (without its newline) and the connection's local address.
func roundTrip(n *Namespace, dst netip.AddrPort, msg string) (string, netip.AddrPort, error) {
	c, err := n.DialTCP(dst.String(), ioTimeout)
	if err != nil {
		return "", netip.AddrPort{}, err
	}
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	if err := c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return "", local, err
	}
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", local, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", local, err
	}
	return strings.TrimSuffix(line, "\n"), local, nil
}

// netnsEntries lists the NetnsDir entries whose names start with prefix.
func netnsEntries(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// ownEntries lists this process's test namespaces.
func ownEntries(t *testing.T) []string {
	t.Helper()
	return netnsEntries(t, TestPrefix+strconv.Itoa(os.Getpid())+"-")
}

// exists reports whether path exists.
func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err == nil {
		return true
	}
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	t.Fatal(err)
	return false
}

// ifaceNames returns the names of the interfaces the calling thread sees.
func ifaceNames() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	sort.Strings(names)
	return names, nil
}

// deadPID returns a PID that no process has now, from the top of the
// range, where the kernel hands out PIDs last.
func deadPID(t *testing.T) int {
	t.Helper()
	top := 32768
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 1000 {
			top = n
		}
	}
	for pid := top - 1; pid > 1000; pid-- {
		if !processAlive(pid) {
			return pid
		}
	}
	t.Fatal("no free PID found")
	return 0
}
