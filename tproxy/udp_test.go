package tproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/zfw-go/zfw/testenv"
)

var _ net.Conn = (*UDPSession)(nil)

func TestUDPListenerOneSessionPerClient(t *testing.T) {
	testenv.RequirePrivileged(t)
	tests := []struct{ listen, host string }{
		{"127.0.0.1:0", "127.0.0.1"},
		{"[::1]:0", "::1"},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			l := listenUDP(t, tt.listen, UDPOptions{})
			if l.Port() == 0 {
				t.Fatal("Port() = 0, want the port the kernel chose")
			}
			if got := l.Addr().(*net.UDPAddr).AddrPort().Port(); got != l.Port() {
				t.Errorf("Addr() port %d, Port() %d", got, l.Port())
			}
			dst := netip.AddrPortFrom(netip.MustParseAddr(tt.host), l.Port())
			clients := []*net.UDPConn{udpClient(t, tt.host), udpClient(t, tt.host)}
			const perClient = 3
			for j := range perClient {
				for i, c := range clients {
					send(t, c, dst, fmt.Sprintf("client%d-%d", i, j))
				}
			}

			sessions := map[netip.AddrPort]*UDPSession{}
			for range clients {
				s := accept(t, l)
				sessions[s.ClientAddr()] = s
			}
			for i, c := range clients {
				s := sessions[clientAddr(c)]
				if s == nil {
					t.Fatalf("no session for client %s; have %v", clientAddr(c), sessions)
				}
				if s.OriginalDst() != dst {
					t.Errorf("OriginalDst() = %s, want %s", s.OriginalDst(), dst)
				}
				if got := s.LocalAddr().(*net.UDPAddr).AddrPort(); got != dst {
					t.Errorf("LocalAddr() = %s, want %s", got, dst)
				}
				if got := s.RemoteAddr().(*net.UDPAddr).AddrPort(); got != clientAddr(c) {
					t.Errorf("RemoteAddr() = %s, want %s", got, clientAddr(c))
				}
				for j := range perClient {
					if got, want := read(t, s), fmt.Sprintf("client%d-%d", i, j); got != want {
						t.Errorf("session of client %d read %q, want %q", i, got, want)
					}
				}
				reply := fmt.Sprintf("reply to client%d", i)
				if n, err := s.Write([]byte(reply)); err != nil || n != len(reply) {
					t.Fatalf("Write: %d, %v", n, err)
				}
				msg, from := receive(t, c)
				if msg != reply || from != dst {
					t.Errorf("client %d received %q from %s, want %q from %s", i, msg, from, reply, dst)
				}
			}
			if st := l.Stats(); st.Sessions != 2 || st.Datagrams != 2*perClient || st.Active != 2 {
				t.Errorf("Stats() = %+v, want 2 sessions (both active) and %d datagrams", st, 2*perClient)
			}
		})
	}
}

// TestUDPOriginalDestinationFromControlMessage sends to several loopback
// addresses of a wildcard listener: each session's OriginalDst is the
// address actually sent to, and its replies come from there.
func TestUDPOriginalDestinationFromControlMessage(t *testing.T) {
	testenv.RequirePrivileged(t)
	type flow struct{ client, dst string }
	tests := []struct {
		listen string
		flows  []flow
	}{
		{"127.0.0.1:0", []flow{{"127.0.0.1", "127.0.0.1"}}},
		{"0.0.0.0:0", []flow{{"127.0.0.1", "127.0.0.1"}, {"127.0.0.1", "127.0.0.2"}, {"127.0.0.1", "127.0.0.3"}}},
		{"[::]:0", []flow{{"::1", "::1"}, {"127.0.0.1", "127.0.0.1"}, {"127.0.0.1", "127.0.0.2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			l := listenUDP(t, tt.listen, UDPOptions{})
			clients := map[string]*net.UDPConn{}
			for _, f := range tt.flows {
				c := clients[f.client]
				if c == nil {
					c = udpClient(t, f.client)
					clients[f.client] = c
				}
				dst := netip.AddrPortFrom(netip.MustParseAddr(f.dst), l.Port())
				send(t, c, dst, "to "+f.dst)
				s := accept(t, l)
				if s.OriginalDst() != dst || s.ClientAddr() != clientAddr(c) {
					t.Errorf("session %s -> %s, want %s -> %s", s.ClientAddr(), s.OriginalDst(), clientAddr(c), dst)
				}
				if got := read(t, s); got != "to "+f.dst {
					t.Errorf("read %q, want %q", got, "to "+f.dst)
				}
				if _, err := s.Write([]byte("from " + f.dst)); err != nil {
					t.Fatal(err)
				}
				msg, from := receive(t, c)
				if msg != "from "+f.dst || from != dst {
					t.Errorf("client received %q from %s, want %q from %s", msg, from, "from "+f.dst, dst)
				}
			}
			if got := l.Stats().Sessions; got != uint64(len(tt.flows)) {
				t.Errorf("%d sessions, want one per flow: %d", got, len(tt.flows))
			}
		})
	}
}

func TestUDPSessionExpiresWhenIdle(t *testing.T) {
	testenv.RequirePrivileged(t)
	l := listenUDP(t, "127.0.0.1:0", UDPOptions{IdleTimeout: 200 * time.Millisecond})
	c := udpClient(t, "127.0.0.1")
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Port())

	send(t, c, dst, "one")
	s1 := accept(t, l)
	if got := read(t, s1); got != "one" {
		t.Fatalf("read %q, want \"one\"", got)
	}
	s1.SetReadDeadline(time.Now().Add(waitTimeout))
	if n, err := s1.Read(make([]byte, 64)); err != io.EOF {
		t.Fatalf("Read of an idle session: %d, %v; want io.EOF once it expires", n, err)
	}
	if _, err := s1.Write([]byte("late")); !isClosedErr(err) {
		t.Errorf("Write to an expired session: %v, want net.ErrClosed", err)
	}
	if st := l.Stats(); st.Expired != 1 || st.Active != 0 {
		t.Errorf("Stats() = %+v, want 1 expired and none active", st)
	}

	send(t, c, dst, "two")
	s2 := accept(t, l)
	if s2 == s1 {
		t.Fatal("Accept returned the expired session")
	}
	if s2.ClientAddr() != s1.ClientAddr() || s2.OriginalDst() != s1.OriginalDst() {
		t.Errorf("new session %s -> %s, want the flow %s -> %s", s2.ClientAddr(), s2.OriginalDst(), s1.ClientAddr(), s1.OriginalDst())
	}
	if got := read(t, s2); got != "two" {
		t.Errorf("new session read %q, want \"two\"", got)
	}
}

// TestUDPExpiredSessionKeepsQueuedDatagrams: expiry counts arrivals, not
// reads, so datagrams still queued are read before io.EOF.
func TestUDPExpiredSessionKeepsQueuedDatagrams(t *testing.T) {
	testenv.RequirePrivileged(t)
	l := listenUDP(t, "127.0.0.1:0", UDPOptions{IdleTimeout: 100 * time.Millisecond})
	c := udpClient(t, "127.0.0.1")
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Port())
	send(t, c, dst, "one")
	send(t, c, dst, "two")
	s := accept(t, l)
	testenv.WaitFor(t, waitTimeout, "session expired", func() bool { return l.Stats().Expired == 1 })
	for _, want := range []string{"one", "two"} {
		if got := read(t, s); got != want {
			t.Errorf("read %q, want %q", got, want)
		}
	}
	if _, err := s.Read(make([]byte, 64)); err != io.EOF {
		t.Errorf("Read after the queue is drained: %v, want io.EOF", err)
	}
}

func TestUDPSessionCloseForgetsFlow(t *testing.T) {
	testenv.RequirePrivileged(t)
	l := listenUDP(t, "[::1]:0", UDPOptions{})
	c := udpClient(t, "::1")
	dst := netip.AddrPortFrom(netip.IPv6Loopback(), l.Port())

	send(t, c, dst, "one")
	s1 := accept(t, l)
	if got := read(t, s1); got != "one" {
		t.Fatalf("read %q, want \"one\"", got)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if _, err := s1.Read(make([]byte, 64)); !isClosedErr(err) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := s1.Write([]byte("x")); !isClosedErr(err) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}

	send(t, c, dst, "two")
	s2 := accept(t, l)
	if s2 == s1 {
		t.Fatal("Accept returned the closed session")
	}
	if got := read(t, s2); got != "two" {
		t.Errorf("new session read %q, want \"two\"", got)
	}
	if st := l.Stats(); st.Sessions != 2 || st.Active != 1 {
		t.Errorf("Stats() = %+v, want 2 sessions started, 1 active", st)
	}
}

func TestUDPListenerCloseEndsAcceptAndReads(t *testing.T) {
	testenv.RequirePrivileged(t)
	before := runtime.NumGoroutine()
	l := listenUDP(t, "127.0.0.1:0", UDPOptions{})
	c := udpClient(t, "127.0.0.1")
	send(t, c, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Port()), "one")
	s := accept(t, l)
	if got := read(t, s); got != "one" {
		t.Fatalf("read %q, want \"one\"", got)
	}
	s.SetReadDeadline(time.Time{})

	acceptErr, readErr := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := l.Accept()
		acceptErr <- err
	}()
	go func() {
		_, err := s.Read(make([]byte, 64))
		readErr <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, ch := range map[string]chan error{"Accept": acceptErr, "Read": readErr} {
		select {
		case err := <-ch:
			if !isClosedErr(err) {
				t.Errorf("%s after Close: %v, want net.ErrClosed", name, err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("%s still blocked after Close", name)
		}
	}
	if _, err := s.Write([]byte("x")); !isClosedErr(err) {
		t.Errorf("Write after the listener's Close: %v, want net.ErrClosed", err)
	}
	if _, err := l.Accept(); !isClosedErr(err) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	testenv.WaitFor(t, waitTimeout, "goroutines back to where they were", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// TestUDPFullQueueDropsWithoutBlocking fills one session's queue: the
// excess is dropped and counted, and another session still gets its
// datagrams.
func TestUDPFullQueueDropsWithoutBlocking(t *testing.T) {
	testenv.RequirePrivileged(t)
	const queueLen, flood = 2, 10
	l := listenUDP(t, "127.0.0.1:0", UDPOptions{QueueLen: queueLen})
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Port())
	busy, other := udpClient(t, "127.0.0.1"), udpClient(t, "127.0.0.1")

	for i := range flood {
		send(t, busy, dst, fmt.Sprint("busy", i))
	}
	sBusy := accept(t, l)
	testenv.WaitFor(t, waitTimeout, "the flood read", func() bool { return l.Stats().Datagrams == flood })

	send(t, other, dst, "other")
	sOther := accept(t, l)
	if got := read(t, sOther); got != "other" {
		t.Errorf("other session read %q, want \"other\"", got)
	}
	if st := l.Stats(); st.QueueDrops != flood-queueLen {
		t.Errorf("Stats() = %+v, want %d queue drops", st, flood-queueLen)
	}
	for i := range queueLen {
		if got, want := read(t, sBusy), fmt.Sprint("busy", i); got != want {
			t.Errorf("busy session read %q, want %q", got, want)
		}
	}
	sBusy.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := sBusy.Read(make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past the queued datagrams: %d, %v; want a timeout", n, err)
	}
}

// TestUDPFullBacklogDropsNewFlows: with no one calling Accept, a datagram
// that would start one session too many is dropped, not queued.
func TestUDPFullBacklogDropsNewFlows(t *testing.T) {
	testenv.RequirePrivileged(t)
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	l := listenUDP(t, "127.0.0.1:0", UDPOptions{Backlog: 1, Logger: logger})
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Port())
	a, b := udpClient(t, "127.0.0.1"), udpClient(t, "127.0.0.1")

	send(t, a, dst, "a")
	testenv.WaitFor(t, waitTimeout, "a's session waiting", func() bool { return l.Stats().Sessions == 1 })
	send(t, b, dst, "b dropped")
	testenv.WaitFor(t, waitTimeout, "b's datagram dropped", func() bool { return l.Stats().BacklogDrops == 1 })
	logged := false
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "backlog full") && e.Data["client"] == clientAddr(b) {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no debug message about b's dropped datagram; logged %d entries", len(hook.AllEntries()))
	}

	if s := accept(t, l); s.ClientAddr() != clientAddr(a) {
		t.Errorf("accepted %s, want a's session %s", s.ClientAddr(), clientAddr(a))
	}
	send(t, b, dst, "b again")
	s := accept(t, l)
	if s.ClientAddr() != clientAddr(b) {
		t.Errorf("accepted %s, want b's session %s", s.ClientAddr(), clientAddr(b))
	}
	if got := read(t, s); got != "b again" {
		t.Errorf("b's session read %q, want \"b again\"", got)
	}
}

func TestUDPSessionDeadlines(t *testing.T) {
	testenv.RequirePrivileged(t)
	l := listenUDP(t, "127.0.0.1:0", UDPOptions{})
	c := udpClient(t, "127.0.0.1")
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Port())
	send(t, c, dst, "first datagram")
	s := accept(t, l)

	short := make([]byte, 5)
	s.SetReadDeadline(time.Now().Add(waitTimeout))
	if n, err := s.Read(short); err != nil || string(short[:n]) != "first" {
		t.Errorf("Read into a short buffer: %q, %v; want the datagram truncated", short[:n], err)
	}

	s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := s.Read(make([]byte, 64))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Read after the deadline: %v, want a net.Error timeout", err)
	}

	// A deadline moved while Read waits applies to that Read.
	s.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 64))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // let Read block; it also works if it has not yet
	s.SetReadDeadline(time.Now().Add(-time.Second))
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("blocked Read after the deadline moved: %v, want a timeout", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Read still blocked after its deadline moved to the past")
	}

	// Clearing the deadline makes Read work again.
	s.SetReadDeadline(time.Time{})
	send(t, c, dst, "second")
	if got := read(t, s); got != "second" {
		t.Errorf("read %q, want \"second\"", got)
	}

	s.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := s.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Write after the deadline: %v, want a timeout", err)
	}
	s.SetDeadline(time.Time{})
	if _, err := s.Write([]byte("reply")); err != nil {
		t.Errorf("Write with no deadline: %v", err)
	}
	if msg, _ := receive(t, c); msg != "reply" {
		t.Errorf("client received %q, want \"reply\"", msg)
	}
}

func TestUDPErrorsNameTheSession(t *testing.T) {
	testenv.RequirePrivileged(t)
	l := listenUDP(t, "127.0.0.1:0", UDPOptions{})
	c := udpClient(t, "127.0.0.1")
	send(t, c, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Port()), "x")
	s := accept(t, l)
	s.Close()
	_, err := s.Read(nil)
	for _, want := range []string{"read udp", s.OriginalDst().String(), s.ClientAddr().String()} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Read error %q does not contain %q", err, want)
		}
	}
}
