// Command demo shows the zfw intercept dataplane end to end on this
// machine, inside network namespaces it creates and removes:
//
//	client ──veth── router (zfw attached) ──veth── server
//
// It starts the dataplane in the router, opens a TCP TPROXY listener on
// 127.0.0.1 and a UDP one on [::1], registers a TCP intercept
// (10.99.0.0/24 port 8080) and an IPv6 UDP intercept (fd00:99::/64 port
// 5353), sends traffic from the client to addresses that exist nowhere,
// prints what each socket received with its original destination, then
// unregisters and shows that the traffic is no longer steered.
//
// Run it as root: `make demo` (or `go run ./examples/demo`).
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/examples/internal/listing"
	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/tproxy"
	"github.com/zfw-go/zfw/zfw"
)

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: needs root (it loads BPF programs and creates network namespaces)")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

const (
	tcpService = "10.99.0.0/24"
	tcpPort    = 8080
	udpService = "fd00:99::/64"
	udpPort    = 5353
)

func run(ctx context.Context) error {
	log := logrus.New()
	log.SetLevel(logrus.InfoLevel)

	step("building namespaces client, router, server joined by veth")
	topo, err := testenv.NewTopology(ctx, "zfwdemo-")
	if err != nil {
		return err
	}
	defer func() {
		if err := topo.Close(); err != nil {
			log.WithError(err).Warn("remove namespaces")
		}
		step("removed the namespaces; nothing is left behind")
	}()
	fmt.Printf("   client %s (%s, %s) -> router %s | %s -> server\n",
		topo.ClientIf, topo.ClientAddr4.Addr(), topo.ClientAddr6.Addr(), topo.RouterClientIf, topo.RouterServerIf)

	var (
		fw   *zfw.Firewall
		tcp  *tproxy.TCPListener
		udp  *tproxy.UDPListener
		opts = zfw.Options{
			Interfaces: []zfw.Interface{{Name: topo.RouterClientIf}},
			PinPath:    fmt.Sprintf("/sys/fs/bpf/zfw-demo-%d", os.Getpid()),
			Logger:     log,
		}
	)
	step("starting the dataplane in the router and opening TPROXY sockets")
	err = topo.Router.Do(func() error {
		var err error
		if fw, err = zfw.New(opts); err != nil {
			return err
		}
		if tcp, err = tproxy.ListenTCP(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
			return err
		}
		udp, err = tproxy.ListenUDP(ctx, netip.MustParseAddrPort("[::1]:0"), tproxy.UDPOptions{IdleTimeout: 5 * time.Second})
		return err
	})
	if fw != nil {
		defer fw.Close()
	}
	if tcp != nil {
		defer tcp.Close()
	}
	if udp != nil {
		defer udp.Close()
	}
	if err != nil {
		return err
	}
	fmt.Printf("   TCP listener %s, UDP listener %s\n", tcp.Addr(), udp.Addr())
	serveTCP(tcp)
	serveUDP(udp)

	step("registering intercepts")
	svcs := []intercept.Intercept{
		{
			ServiceID: "demo-tcp", ServiceName: "echo over tcp",
			Protocols:  []intercept.Protocol{intercept.TCP},
			Addresses:  []netip.Prefix{netip.MustParsePrefix(tcpService)},
			Ports:      []intercept.PortRange{{Low: tcpPort, High: tcpPort}},
			TProxyPort: tcp.Port(),
		},
		{
			ServiceID: "demo-udp6", ServiceName: "echo over udp, ipv6",
			Protocols:  []intercept.Protocol{intercept.UDP},
			Addresses:  []netip.Prefix{netip.MustParsePrefix(udpService)},
			Ports:      []intercept.PortRange{{Low: udpPort, High: udpPort}},
			TProxyPort: udp.Port(),
		},
	}
	for _, ic := range svcs {
		if err := fw.Register(ctx, ic); err != nil {
			return err
		}
	}
	listing.Rules(os.Stdout, fw.Rules().List(), fw.Usage())

	step("sending traffic from the client namespace")
	for _, dst := range []string{"10.99.0.7:8080", "10.99.0.200:8080"} {
		reply, err := tcpRequest(topo.Client, dst, "hello over tcp")
		if err != nil {
			return fmt.Errorf("tcp to %s: %w", dst, err)
		}
		fmt.Printf("   client -> tcp %-18s reply: %s\n", dst, reply)
	}
	for _, dst := range []string{"[fd00:99::53]:5353", "[fd00:99::1:2]:5353"} {
		reply, err := udpRequest(topo.Client, dst, "hello over udp")
		if err != nil {
			return fmt.Errorf("udp to %s: %w", dst, err)
		}
		fmt.Printf("   client -> udp %-18s reply: %s\n", dst, reply)
	}
	if st, err := fw.Stats(); err == nil {
		fmt.Printf("   dataplane: %d packets steered, %d answered from the flow cache, %d policy lookups\n",
			st.Steered, st.CacheHits, st.PolicyLookups)
	}

	step("unregistering both services")
	for _, ic := range svcs {
		if err := fw.Unregister(ctx, ic.ServiceID); err != nil {
			return err
		}
	}
	if _, err := tcpRequest(topo.Client, "10.99.0.7:8080", "anyone?"); err != nil {
		fmt.Printf("   client -> tcp 10.99.0.7:8080     no longer steered: %v\n", shortErr(err))
	} else {
		return errors.New("tcp traffic still steered after Unregister")
	}
	if _, err := udpRequest(topo.Client, "[fd00:99::53]:5353", "anyone?"); err != nil {
		fmt.Printf("   client -> udp [fd00:99::53]:5353 no longer steered: %v\n", shortErr(err))
	} else {
		return errors.New("udp traffic still steered after Unregister")
	}
	step("done; cleaning up")
	return nil
}

func step(s string) { fmt.Printf("\n== %s\n", s) }

func shortErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no answer (timed out)"
	}
	return err.Error()
}

// serveTCP answers each line with what the socket saw.
func serveTCP(ln *tproxy.TCPListener) {
	testenv.Serve(ln.Accept, func(c net.Conn) {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			fmt.Printf("   [tcp socket] from %s, original destination %s: %q\n", c.RemoteAddr(), c.LocalAddr(), sc.Text())
			fmt.Fprintf(c, "tcp socket saw you dial %s\n", c.LocalAddr())
		}
	})
}

func serveUDP(ln *tproxy.UDPListener) {
	testenv.Serve(ln.Accept, func(s *tproxy.UDPSession) {
		buf := make([]byte, 1500)
		for {
			n, err := s.Read(buf)
			if err != nil {
				return
			}
			fmt.Printf("   [udp socket] from %s, original destination %s: %q\n", s.ClientAddr(), s.OriginalDst(), buf[:n])
			fmt.Fprintf(s, "udp socket saw you send to %s", s.OriginalDst())
		}
	})
}

func tcpRequest(ns *testenv.Namespace, dst, msg string) (string, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", dst, 2*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, msg); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}

func udpRequest(ns *testenv.Namespace, dst, msg string) (string, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.Dial("udp", dst)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
