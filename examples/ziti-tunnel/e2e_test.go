package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/intercept/ziti"
	"github.com/zfw-go/zfw/testenv"
	zitinet "github.com/zfw-go/zfw/testenv/ziti"
)

// startTunneler runs the tunneler for id with its dataplane, DNS server and
// TPROXY listeners in the topology's router namespace, attached to the
// router's client-facing interface, and stops it when t ends. The Ziti
// context stays in the test's own namespace, where the controller and
// router listen on 127.0.0.1.
func startTunneler(t *testing.T, topo *testenv.Topology, id zitinet.Identity) (tun *tunneler, dnsAddr netip.AddrPort, stop func() error) {
	t.Helper()
	dnsAddr = netip.AddrPortFrom(topo.RouterClientAddr4.Addr(), 53)
	tun, err := newTunneler(config{
		Identity:        id.File,
		Interfaces:      []string{topo.RouterClientIf},
		DNSAddr:         dnsAddr.String(),
		PinPath:         pinPath(t),
		RefreshInterval: time.Second,
		UDPIdleTimeout:  2 * time.Second,
		InNamespace:     topo.Router.Do,
		Logger:          testenv.Logger(t, logrus.InfoLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tun.Run(ctx) }()
	select {
	case <-tun.attached:
	case err := <-done:
		cancel()
		t.Fatalf("tunneler: %v", err)
	}
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("tunneler did not stop within 30s of its context's end")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("tunneler: %v", err)
		}
	})
	return tun, dnsAddr, stop
}

func TestTunnelerInterceptsServicesOfARealZitiNetwork(t *testing.T) {
	testenv.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("starts a real OpenZiti network")
	}
	topo := testenv.NewTestTopology(t)
	n := zitinet.StartTest(t, zitinet.Options{Logger: testenv.Logger(t, logrus.InfoLevel)})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	singles, pair := freePorts(t, 2)
	portA, portC := singles[0], singles[1]
	startServers(t, portA, pair, pair+1, portC)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	var err error
	var client, hoster, sdkHoster zitinet.Identity
	client, err = n.CreateIdentity(ctx, "tunneler", "clients")
	must("client identity", err)
	hoster, err = n.CreateIdentity(ctx, "hoster", "hosts")
	must("host identity", err)
	sdkHoster, err = n.CreateIdentity(ctx, "sdk-hoster", "sdk-hosts")
	must("sdk host identity", err)

	// One host.v1 for every service ziti tunnel host serves: the
	// protocol and port the client dialed, on 127.0.0.1.
	_, err = n.CreateConfig(ctx, "loopback-host", zitinet.HostV1{
		ForwardProtocol: true, AllowedProtocols: []string{"tcp", "udp"},
		Address:     "127.0.0.1",
		ForwardPort: true, AllowedPortRanges: []zitinet.PortRange{{Low: portA, High: portA}, {Low: pair, High: pair + 1}, {Low: portC, High: portC}},
	})
	must("host config", err)
	single := []zitinet.PortRange{{Low: portA, High: portA}}
	tcp, tcpUDP := []string{"tcp"}, []string{"tcp", "udp"}
	services := []struct {
		name      string
		intercept zitinet.InterceptV1
		sdkHosted bool
	}{
		{name: "plain", intercept: zitinet.InterceptV1{Protocols: tcpUDP, Addresses: []string{"10.99.1.10"}, PortRanges: single}},
		{name: "ranges", intercept: zitinet.InterceptV1{Protocols: tcp, Addresses: []string{"10.99.2.0/24"},
			PortRanges: []zitinet.PortRange{{Low: pair, High: pair + 1}, {Low: portC, High: portC}}}},
		{name: "named", intercept: zitinet.InterceptV1{Protocols: tcp, Addresses: []string{"echo.zt.test"}, PortRanges: single}},
		{name: "wild", intercept: zitinet.InterceptV1{Protocols: tcpUDP, Addresses: []string{"*.wild.zt.test"}, PortRanges: single}},
		{name: "denied", intercept: zitinet.InterceptV1{Protocols: tcp, Addresses: []string{"10.99.4.10"}, PortRanges: single,
			AllowedSourceAddresses: []string{"192.0.2.0/24"}}},
		{name: "doomed", intercept: zitinet.InterceptV1{Protocols: tcp, Addresses: []string{"10.99.5.10"}, PortRanges: single}},
		{name: "appdata", sdkHosted: true, intercept: zitinet.InterceptV1{Protocols: tcp, Addresses: []string{"appdata.zt.test"}, PortRanges: single,
			SourceIP: "$src_ip:$src_port", DialOptions: &zitinet.DialOptions{ConnectTimeoutSeconds: 10}}},
	}
	createService := func(name string, ic zitinet.InterceptV1, sdkHosted bool) {
		t.Helper()
		_, err := n.CreateConfig(ctx, name+"-intercept", ic)
		must("intercept config "+name, err)
		svc := zitinet.Service{Name: name, Configs: []string{name + "-intercept"}, RoleAttributes: []string{"intercepted", "tunnel-hosted"}}
		if sdkHosted {
			svc.RoleAttributes = []string{"intercepted", "sdk-hosted"}
		} else {
			svc.Configs = append(svc.Configs, "loopback-host")
		}
		_, err = n.CreateService(ctx, svc)
		must("service "+name, err)
	}
	for _, s := range services {
		createService(s.name, s.intercept, s.sdkHosted)
	}
	_, err = n.CreateServicePolicy(ctx, "tunnel-bind", zitinet.Bind, []string{"#tunnel-hosted"}, []string{"#hosts"})
	must("bind policy", err)
	_, err = n.CreateServicePolicy(ctx, "sdk-bind", zitinet.Bind, []string{"#sdk-hosted"}, []string{"#sdk-hosts"})
	must("sdk bind policy", err)
	_, err = n.CreateServicePolicy(ctx, "clients-dial", zitinet.Dial, []string{"#intercepted"}, []string{"#clients"})
	must("dial policy", err)

	_, err = n.Host(ctx, hoster)
	must("ziti tunnel host", err)
	sdkHost := sdkContext(t, sdkHoster)
	listen := func(service string) {
		t.Helper()
		var l net.Listener
		must("sdk listen "+service, testenv.Eventually(ctx, settle, "listen "+service, func() error {
			var err error
			l, err = sdkHost.Listen(service)
			return err
		}))
		serveAppData(t, l)
	}
	listen("appdata")
	for _, s := range services {
		must("terminators of "+s.name, n.WaitTerminators(ctx, s.name, 1))
	}

	tun, dnsAddr, stopTunneler := startTunneler(t, topo, client)
	clientNS := topo.Client
	clientTCP := func(dst netip.AddrPort) func() error {
		return tcpWorks(clientNS, dst, "hello "+dst.String())
	}
	ap := func(addr string, port uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr(addr), port)
	}

	t.Run("TCP half-closes in both directions", func(t *testing.T) {
		// The request reaches the server only when the client's
		// half-close does, and the reply only when the server's does.
		if err := testenv.Eventually(ctx, settle, "TCP through plain", clientTCP(ap("10.99.1.10", portA))); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("UDP answers from the original destination", func(t *testing.T) {
		dst := ap("10.99.1.10", portA)
		err := testenv.Eventually(ctx, settle, "UDP through plain", udpWorks(clientNS, dst, "ping"))
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("an idle UDP flow ends", func(t *testing.T) {
		dst := ap("10.99.1.10", portA)
		if _, _, err := exchangeUDP(clientNS, dst, "short-lived"); err != nil {
			t.Fatal(err)
		}
		// Flows to dst over UDP; TCP flows of other subtests may still be
		// closing and are not this check's business.
		udpFlows := func() (n int) {
			for _, f := range tun.listeners.openFlows() {
				if strings.HasPrefix(f, "udp ") && strings.HasSuffix(f, "->"+dst.String()) {
					n++
				}
			}
			return n
		}
		if udpFlows() == 0 {
			t.Fatalf("no UDP flow to %s open right after the exchange (open: %v); the check below would prove nothing", dst, tun.listeners.openFlows())
		}
		idle, stop := context.WithTimeout(ctx, 10*tun.cfg.UDPIdleTimeout)
		defer stop()
		err := testenv.Eventually(idle, settle, "the UDP flow to expire", func() error {
			if n := udpFlows(); n > 0 {
				return fmt.Errorf("%d UDP flows to %s open (all open: %v)", n, dst, tun.listeners.openFlows())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("CIDR with several port ranges", func(t *testing.T) {
		for _, dst := range []netip.AddrPort{ap("10.99.2.7", pair), ap("10.99.2.200", pair+1), ap("10.99.2.9", portC)} {
			if err := testenv.Eventually(ctx, settle, "TCP to "+dst.String(), clientTCP(dst)); err != nil {
				t.Error(err)
			}
		}
		outside := portA // served on loopback, but not one of the service's ranges
		if _, _, err := exchangeTCP(clientNS, ap("10.99.2.7", outside), "x"); err == nil {
			t.Errorf("port %d is outside the service's ranges, yet the connection went through", outside)
		}
	})

	t.Run("hostname resolved through the tunneler's DNS server", func(t *testing.T) {
		var addr netip.Addr
		err := testenv.Eventually(ctx, settle, "resolve echo.zt.test", func() error {
			var err error
			addr, err = resolve(clientNS, dnsAddr, "echo.zt.test")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !tun.cfg.DNSRange.Contains(addr) {
			t.Fatalf("echo.zt.test is %s, outside the DNS range %s", addr, tun.cfg.DNSRange)
		}
		if err := testenv.Eventually(ctx, settle, "TCP to echo.zt.test", clientTCP(netip.AddrPortFrom(addr, portA))); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("wildcard names get their own intercepted addresses", func(t *testing.T) {
		seen := map[netip.Addr]string{}
		for _, name := range []string{"a.wild.zt.test", "b.c.wild.zt.test"} {
			var addr netip.Addr
			err := testenv.Eventually(ctx, settle, "resolve "+name, func() error {
				var err error
				addr, err = resolve(clientNS, dnsAddr, name)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if other, dup := seen[addr]; dup {
				t.Fatalf("%s and %s both got %s", name, other, addr)
			}
			seen[addr] = name
			if err := testenv.Eventually(ctx, settle, "TCP to "+name, clientTCP(netip.AddrPortFrom(addr, portA))); err != nil {
				t.Fatal(err)
			}
			got, _, err := exchangeUDP(clientNS, netip.AddrPortFrom(addr, portA), name)
			if err != nil {
				t.Fatalf("UDP to %s: %v", name, err)
			}
			if err := expectReply(got, fmt.Sprintf("%d|%s", portA, name)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := resolve(clientNS, dnsAddr, "wild.zt.test"); err == nil {
			t.Error("wild.zt.test itself resolved; *.wild.zt.test must not match it")
		}
	})

	t.Run("AppData carries the flow to the hosting side", func(t *testing.T) {
		var addr netip.Addr
		err := testenv.Eventually(ctx, settle, "resolve appdata.zt.test", func() error {
			var err error
			addr, err = resolve(clientNS, dnsAddr, "appdata.zt.test")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		var local netip.AddrPort
		err = testenv.Eventually(ctx, settle, "AppData through appdata", func() error {
			raw, l, err := readAll(clientNS, netip.AddrPortFrom(addr, portA))
			if err != nil {
				return err
			}
			local = l
			return json.Unmarshal(raw, &got)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			ziti.AppDataProtocol:   "tcp",
			ziti.AppDataIP:         addr.String(),
			ziti.AppDataPort:       strconv.Itoa(int(portA)),
			ziti.AppDataHostname:   "appdata.zt.test",
			ziti.AppDataSourceAddr: local.String(),
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("AppData %s = %#v, want %#v (all: %v)", k, got[k], v, got)
			}
		}
	})

	t.Run("a source outside allowedSourceAddresses is not intercepted", func(t *testing.T) {
		if _, ok := serviceByName(tun.ic, "denied"); !ok {
			t.Fatal("the tunneler does not know the denied service; the check below would prove nothing")
		}
		if _, _, err := exchangeTCP(clientNS, ap("10.99.4.10", portA), "x"); err == nil {
			t.Error("the client is outside 192.0.2.0/24, yet its connection was intercepted")
		}
	})

	t.Run("a removed service stops being intercepted", func(t *testing.T) {
		dst := ap("10.99.5.10", portA)
		if err := testenv.Eventually(ctx, settle, "TCP through doomed", clientTCP(dst)); err != nil {
			t.Fatal(err)
		}
		must("delete doomed", n.DeleteService(ctx, "doomed"))
		// Probe only once the tunneler has applied the removal: a dial of
		// a service the controller no longer has makes sdk-golang v1.5.0
		// refresh its services from the dialing goroutine, racing its own
		// refresh loop on CtrlClient.lastServiceUpdate (an SDK data race
		// that -race reports).
		gone, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		err := testenv.Eventually(gone, settle, "the tunneler to drop doomed", func() error {
			if _, ok := serviceByName(tun.ic, "doomed"); ok {
				return errors.New("still intercepted")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := exchangeTCP(clientNS, dst, "x"); err == nil {
			t.Errorf("%s is still intercepted after its service was removed", dst)
		}
	})

	t.Run("a service created while running is intercepted", func(t *testing.T) {
		dst := ap("10.99.6.10", portA)
		start := time.Now()
		createService("late", zitinet.InterceptV1{Protocols: tcp, Addresses: []string{dst.Addr().String()}, PortRanges: single}, true)
		listen("late")
		err := testenv.Eventually(ctx, settle, "TCP through late", func() error {
			raw, _, err := readAll(clientNS, dst)
			if err != nil {
				return err
			}
			var got map[string]any
			if err := json.Unmarshal(raw, &got); err != nil {
				return err
			}
			return expectReply(fmt.Sprint(got[ziti.AppDataIP]), dst.Addr().String())
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("FIGURE service-create-to-first-intercepted-connection: %s (tunneler refresh interval %s)",
			time.Since(start).Round(time.Millisecond), tun.cfg.RefreshInterval)
	})

	t.Run("stopping the tunneler unregisters everything", func(t *testing.T) {
		dst := ap("10.99.1.10", portA)
		if err := testenv.Eventually(ctx, settle, "TCP through plain", clientTCP(dst)); err != nil {
			t.Fatal(err)
		}
		if err := stopTunneler(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(tun.cfg.PinPath); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("pin folder %s after stop: %v, want it gone", tun.cfg.PinPath, err)
		}
		if _, _, err := exchangeTCP(clientNS, dst, "x"); err == nil {
			t.Errorf("%s still intercepted after the tunneler stopped", dst)
		}
		if _, err := resolve(clientNS, dnsAddr, "echo.zt.test"); err == nil {
			t.Error("the DNS server still answers after the tunneler stopped")
		}
	})
}

// serviceByName finds an intercepted service by name.
func serviceByName(ic *ziti.Interceptor, name string) (ziti.Service, bool) {
	services := ic.Services()
	k := slices.IndexFunc(services, func(s ziti.Service) bool { return s.Name == name })
	if k < 0 {
		return ziti.Service{}, false
	}
	return services[k], true
}
