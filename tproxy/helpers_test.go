package tproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitTimeout bounds every wait for an event. It is generous: the tests
// never assert on speed, only that things happen.
const waitTimeout = 10 * time.Second

func listenTCP(t *testing.T, addr string) *TCPListener {
	t.Helper()
	l, err := ListenTCP(context.Background(), netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func listenUDP(t *testing.T, addr string, opts UDPOptions) *UDPListener {
	t.Helper()
	l, err := ListenUDP(context.Background(), netip.MustParseAddrPort(addr), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// udpClient opens an unconnected UDP socket on an ephemeral port of addr.
func udpClient(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func clientAddr(c *net.UDPConn) netip.AddrPort {
	return unmap(c.LocalAddr().(*net.UDPAddr).AddrPort())
}

func send(t *testing.T, c *net.UDPConn, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		t.Fatalf("send %q to %s: %v", msg, to, err)
	}
}

// receive reads one datagram on c and returns it with its source.
func receive(t *testing.T, c *net.UDPConn) (string, netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("client %s: receive: %v", c.LocalAddr(), err)
	}
	return string(buf[:n]), unmap(from)
}

// accept waits for the listener's next session.
func accept(t *testing.T, l *UDPListener) *UDPSession {
	t.Helper()
	type result struct {
		s   *UDPSession
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := l.Accept()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		return r.s
	case <-time.After(waitTimeout):
		t.Fatalf("Accept: no session after %v", waitTimeout)
		return nil
	}
}

// read reads one datagram of s.
func read(t *testing.T, s *UDPSession) string {
	t.Helper()
	s.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 2048)
	n, err := s.Read(buf)
	if err != nil {
		t.Fatalf("session %s->%s: Read: %v", s.ClientAddr(), s.OriginalDst(), err)
	}
	return string(buf[:n])
}

// getsockopt reads an integer socket option of c.
func getsockopt(t *testing.T, c syscall.Conn, level, name int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var optErr error
	if err := rc.Control(func(fd uintptr) {
		v, optErr = unix.GetsockoptInt(int(fd), level, name)
	}); err != nil {
		t.Fatal(err)
	}
	if optErr != nil {
		t.Fatalf("getsockopt(%d, %d): %v", level, name, optErr)
	}
	return v
}

func isClosedErr(err error) bool { return errors.Is(err, net.ErrClosed) }
