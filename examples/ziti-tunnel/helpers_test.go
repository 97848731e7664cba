package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	sdk "github.com/openziti/sdk-golang/ziti"

	"github.com/zfw-go/zfw/testenv"
	zitinet "github.com/zfw-go/zfw/testenv/ziti"
)

// settle bounds each wait for something the controller, the SDK or the
// dataplane makes true on its own time.
const settle = 2 * time.Minute

// pinPath returns a fresh pin folder for a test's dataplane.
func pinPath(tb testing.TB) string { return testenv.PinPath(tb, "zt") }

// loopbackServers answers on 127.0.0.1, on TCP and UDP, with the port the
// request arrived on and the request: "port|request". TCP reads the
// request up to the client's half-close, answers, and closes.
type loopbackServers struct {
	tcp []net.Listener
	udp []net.PacketConn
	wg  sync.WaitGroup
}

// startServers binds the ports (TCP and UDP each) and serves them until
// tb ends.
func startServers(tb testing.TB, ports ...uint16) {
	tb.Helper()
	s := &loopbackServers{}
	for _, p := range ports {
		if err := s.bind(p); err != nil {
			s.close()
			tb.Fatal(err)
		}
	}
	s.serve()
	tb.Cleanup(s.close)
}

func (s *loopbackServers) bind(port uint16) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.tcp = append(s.tcp, l)
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	s.udp = append(s.udp, pc)
	return nil
}

func (s *loopbackServers) serve() {
	for _, l := range s.tcp {
		port := l.Addr().(*net.TCPAddr).Port
		s.wg.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				s.wg.Go(func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(30 * time.Second))
					req, err := io.ReadAll(c)
					if err != nil {
						return
					}
					fmt.Fprintf(c, "%d|%s", port, req)
				})
			}
		})
	}
	for _, pc := range s.udp {
		port := pc.LocalAddr().(*net.UDPAddr).Port
		s.wg.Go(func() {
			buf := make([]byte, 64*1024)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(fmt.Appendf(nil, "%d|%s", port, buf[:n]), from)
			}
		})
	}
}

func (s *loopbackServers) close() {
	for _, l := range s.tcp {
		l.Close()
	}
	for _, pc := range s.udp {
		pc.Close()
	}
	s.wg.Wait()
}

// freePorts finds single ports and one pair of consecutive ports free for
// TCP and UDP on 127.0.0.1. The servers must bind them at once; another
// process taking one in between fails the test, it does not corrupt it.
func freePorts(tb testing.TB, singles int) (ports []uint16, pair uint16) {
	tb.Helper()
	taken := map[uint16]bool{}
	free := func(p uint16) bool {
		if p < 1024 || taken[p] {
			return false
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p)))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		defer l.Close()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		pc.Close()
		return true
	}
	pick := func() uint16 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		p := uint16(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		return p
	}
	for range 100 {
		if p := pick(); p < 65535 && free(p) && free(p+1) {
			pair = p
			taken[p], taken[p+1] = true, true
			break
		}
	}
	if pair == 0 {
		tb.Fatal("no two consecutive free ports on 127.0.0.1")
	}
	for len(ports) < singles {
		if p := pick(); free(p) {
			taken[p] = true
			ports = append(ports, p)
		}
	}
	return ports, pair
}

// exchangeTCP connects from ns to dst, sends msg, half-closes, and returns
// everything received until the other side closes.
func exchangeTCP(ns *testenv.Namespace, dst netip.AddrPort, msg string) (reply string, local netip.AddrPort, err error) {
	c, err := ns.DialTCP(dst.String(), 3*time.Second)
	if err != nil {
		return "", local, err
	}
	defer c.Close()
	local = c.LocalAddr().(*net.TCPAddr).AddrPort()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", local, err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return "", local, err
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return "", local, err
	}
	return string(got), local, nil
}

// exchangeUDP sends msg from ns to dst and returns the reply and the
// address it came from.
func exchangeUDP(ns *testenv.Namespace, dst netip.AddrPort, msg string) (reply string, from netip.AddrPort, err error) {
	var pc *net.UDPConn
	err = ns.Do(func() error {
		var err error
		pc, err = net.ListenUDP("udp4", nil)
		return err
	})
	if err != nil {
		return "", from, err
	}
	defer pc.Close()
	if _, err := pc.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
		return "", from, err
	}
	pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64*1024)
	n, from, err := pc.ReadFromUDPAddrPort(buf)
	if err != nil {
		return "", from, err
	}
	return string(buf[:n]), netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
}

// resolve asks the DNS server at server, from ns, for name's A record.
func resolve(ns *testenv.Namespace, server netip.AddrPort, name string) (netip.Addr, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	var resp *dns.Msg
	err := ns.Do(func() error {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		var err error
		resp, _, err = c.Exchange(m, server.String())
		return err
	})
	if err != nil {
		return netip.Addr{}, err
	}
	if resp.Rcode != dns.RcodeSuccess {
		return netip.Addr{}, fmt.Errorf("%s: %s", name, dns.RcodeToString[resp.Rcode])
	}
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			addr, _ := netip.AddrFromSlice(a.A.To4())
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s: no A record in the answer", name)
}

// tcpWorks returns a check that a TCP exchange of msg from ns to dst is
// answered by the hosting server of dst's port.
func tcpWorks(ns *testenv.Namespace, dst netip.AddrPort, msg string) func() error {
	return func() error {
		got, _, err := exchangeTCP(ns, dst, msg)
		if err != nil {
			return err
		}
		return expectReply(got, fmt.Sprintf("%d|%s", dst.Port(), msg))
	}
}

// udpWorks returns a check that a datagram msg from ns to dst is answered
// by the hosting server of dst's port, from dst itself.
func udpWorks(ns *testenv.Namespace, dst netip.AddrPort, msg string) func() error {
	return func() error {
		got, from, err := exchangeUDP(ns, dst, msg)
		if err != nil {
			return err
		}
		if from != dst {
			return fmt.Errorf("reply from %s, want %s", from, dst)
		}
		return expectReply(got, fmt.Sprintf("%d|%s", dst.Port(), msg))
	}
}

// expectReply returns an error unless got is want.
func expectReply(got, want string) error {
	if got != want {
		return fmt.Errorf("reply %q, want %q", got, want)
	}
	return nil
}

// sdkContext loads an identity into an authenticated sdk-golang context,
// closed when tb ends.
func sdkContext(tb testing.TB, id zitinet.Identity) sdk.Context {
	tb.Helper()
	zctx, err := zitinet.NewContext(id, &sdk.Options{RefreshInterval: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(zctx.Close)
	return zctx
}

// serveAppData answers every connection l accepts with the AppData its
// dialer sent, then closes it.
func serveAppData(tb testing.TB, l net.Listener) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				ac, ok := c.(interface{ GetAppData() []byte })
				if !ok {
					return
				}
				_, _ = c.Write(ac.GetAppData())
			})
		}
	})
	tb.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
}

// readAll connects from ns to dst and returns what it reads until EOF.
func readAll(ns *testenv.Namespace, dst netip.AddrPort) ([]byte, netip.AddrPort, error) {
	c, err := ns.DialTCP(dst.String(), 3*time.Second)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err == nil && len(got) == 0 {
		err = errors.New("closed without data")
	}
	return bytes.TrimSpace(got), c.LocalAddr().(*net.TCPAddr).AddrPort(), err
}
