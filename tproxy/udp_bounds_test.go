package tproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/zfw-go/zfw/testenv"
)

// With MaxSessions open, a new flow is refused while every session is in
// use, and takes the place of the one idle longest once that one has been
// idle for evictIdle.
func TestUDPSessionsBeyondTheBoundAreRefusedOrTakeAnIdleOnesPlace(t *testing.T) {
	testenv.RequirePrivileged(t)
	l := listenUDP(t, "127.0.0.1:0", UDPOptions{MaxSessions: 2, IdleTimeout: time.Minute})
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Port())
	a, b, c := udpClient(t, "127.0.0.1"), udpClient(t, "127.0.0.1"), udpClient(t, "127.0.0.1")

	send(t, a, dst, "a")
	sa := accept(t, l)
	send(t, b, dst, "b")
	sb := accept(t, l)
	send(t, c, dst, "c refused")
	testenv.WaitFor(t, waitTimeout, "c refused", func() bool { return l.Stats().Refused == 1 })
	if st := l.Stats(); st.Active != 2 || st.Sessions != 2 {
		t.Fatalf("after a refusal: %+v, want 2 sessions", st)
	}

	// b stays in use; a goes idle.
	for range 3 {
		time.Sleep(evictIdle / 2)
		send(t, b, dst, "b busy")
	}
	send(t, c, dst, "c")
	sc := accept(t, l)
	if sc.ClientAddr() != clientAddr(c) || read(t, sc) != "c" {
		t.Errorf("new session %s, want c's %s with its datagram", sc.ClientAddr(), clientAddr(c))
	}
	if st := l.Stats(); st.Evicted != 1 || st.Active != 2 {
		t.Errorf("after c took a's place: %+v, want 1 evicted, 2 active", st)
	}
	if got := read(t, sa); got != "a" {
		t.Errorf("evicted session read %q, want its queued datagram", got)
	}
	if _, err := sa.Read(make([]byte, 16)); !errors.Is(err, io.EOF) {
		t.Errorf("evicted session: %v, want io.EOF", err)
	}
	for _, want := range []string{"b", "b busy", "b busy", "b busy"} {
		if got := read(t, sb); got != want {
			t.Errorf("b read %q, want %q: the session in use must keep working", got, want)
		}
	}
}

// Datagrams waiting for Read count against MaxQueuedBytes until read, or
// until their session ends.
func TestUDPQueuedBytesAreBounded(t *testing.T) {
	testenv.RequirePrivileged(t)
	const size, bound = 30, 100
	l := listenUDP(t, "127.0.0.1:0", UDPOptions{MaxQueuedBytes: bound})
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Port())
	c := udpClient(t, "127.0.0.1")
	msg := func(i int) string { return fmt.Sprintf("%0*d", size, i) }

	for i := range 10 {
		send(t, c, dst, msg(i))
	}
	testenv.WaitFor(t, waitTimeout, "the datagrams read", func() bool { return l.Stats().Datagrams == 10 })
	if st := l.Stats(); st.QueuedBytes != 3*size || st.MemoryDrops != 7 {
		t.Fatalf("%+v: want %d bytes queued and 7 drops", st, 3*size)
	}
	s := accept(t, l)
	for i := range 3 {
		if got := read(t, s); got != msg(i) {
			t.Errorf("read %q, want %q", got, msg(i))
		}
	}
	if st := l.Stats(); st.QueuedBytes != 0 {
		t.Errorf("after reading everything: %d bytes queued", st.QueuedBytes)
	}
	send(t, c, dst, msg(10))
	send(t, c, dst, msg(11))
	testenv.WaitFor(t, waitTimeout, "two more queued", func() bool { return l.Stats().QueuedBytes == 2*size })
	s.Close()
	if st := l.Stats(); st.QueuedBytes != 0 {
		t.Errorf("after Close: %d bytes still counted", st.QueuedBytes)
	}
}

func TestUDPBoundsMustNotBeNegative(t *testing.T) {
	for _, o := range []UDPOptions{{MaxSessions: -1}, {MaxQueuedBytes: -1}} {
		o := o
		if err := o.resolve(); err == nil {
			t.Errorf("resolve(%+v) accepted", o)
		}
	}
	var o UDPOptions
	if err := o.resolve(); err != nil || o.MaxSessions != DefaultMaxSessions || o.MaxQueuedBytes != DefaultMaxQueuedBytes {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}

// A flood from 50,000 distinct source ports (as rotated or spoofed ports
// make) stays within the bounds, and a flow in use keeps answering.
func TestUDPFloodFromManySourcePortsStaysWithinBounds(t *testing.T) {
	ns := testenv.NewTestNamespace(t, "udpflood")
	const (
		maxSessions = 1000
		maxBytes    = 256 << 10
		flood       = 50000
		inFlight    = 128
	)
	var l *UDPListener
	var legit *net.UDPConn
	err := ns.Do(func() error {
		var err error
		l, err = ListenUDP(t.Context(), netip.MustParseAddrPort("127.0.0.1:0"), UDPOptions{MaxSessions: maxSessions, MaxQueuedBytes: maxBytes, IdleTimeout: time.Minute})
		if err != nil {
			return err
		}
		legit, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	defer legit.Close()
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Port())

	// The service: echo the first datagram of every session, and every
	// datagram of the legitimate one; keep the sessions open.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.Close()
	wg.Go(func() {
		for {
			s, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				buf := make([]byte, 64)
				for {
					n, err := s.Read(buf)
					if err != nil {
						return
					}
					s.Write(buf[:n])
					if s.ClientAddr() != clientAddr(legit) {
						return // one answer for a flood flow, which stays open
					}
				}
			})
		}
	})
	ask := func(msg string) bool {
		if _, err := legit.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
			t.Fatal(err)
		}
		legit.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64)
		n, _, err := legit.ReadFromUDPAddrPort(buf)
		return err == nil && string(buf[:n]) == msg
	}
	if !ask("hello") {
		t.Fatal("the legitimate flow got no answer before the flood")
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	sent := make(chan int, 1)
	go func() {
		n := 0
		ns.Do(func() error {
			for p := 0; n < flood && p < 60000; p++ {
				c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 2000 + p})
				if err != nil {
					continue // a port in use
				}
				if _, err := c.WriteToUDPAddrPort([]byte("flood"), dst); err == nil {
					n++
				}
				c.Close()
				// Paced to what the listener reads: a socket's receive
				// buffer holds a few hundred small datagrams, and what
				// overflows it the kernel drops, the legitimate flow's
				// too, before the listener (what is under test) sees it.
				for uint64(n) > l.Stats().Datagrams+inFlight {
					time.Sleep(time.Millisecond)
				}
			}
			return nil
		})
		sent <- n
	}()
	answered, asked := 0, 0
	check := func() {
		if st := l.Stats(); st.Active > maxSessions || st.QueuedBytes > maxBytes {
			t.Errorf("bounds crossed: %+v", st)
		}
	}
	var n int
flooding:
	for {
		select {
		case n = <-sent:
			break flooding
		default:
		}
		asked++
		if ask(fmt.Sprint("ping", asked)) {
			answered++
		}
		check()
		time.Sleep(20 * time.Millisecond)
	}
	if n < flood {
		t.Fatalf("sent from %d source ports, want %d", n, flood)
	}
	// What the socket's receive buffer held is read once the count
	// stops growing (the kernel drops what did not fit).
	last := l.Stats().Datagrams
	testenv.WaitFor(t, waitTimeout, "the flood read", func() bool {
		time.Sleep(100 * time.Millisecond)
		now := l.Stats().Datagrams
		done := now == last
		last = now
		return done
	})
	check()
	for i := range 5 {
		if !ask(fmt.Sprint("after", i)) {
			t.Errorf("the legitimate flow got no answer after the flood (%d)", i)
		}
	}
	st := l.Stats()
	t.Logf("flood of %d: %+v; the legitimate flow answered %d of %d during it", n, st, answered, asked)
	if st.Refused+st.Evicted == 0 {
		t.Errorf("%+v: the flood never met the session bound", st)
	}
	if answered*2 < asked {
		t.Errorf("the legitimate flow answered %d of %d during the flood", answered, asked)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB over the flood", grew>>20)
	}
	if st.QueuedBytes < 0 {
		t.Errorf("queued bytes went negative: %+v", st)
	}
}
