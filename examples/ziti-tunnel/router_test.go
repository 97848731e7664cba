package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/examples/internal/listing"
	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/testenv"
	zitinet "github.com/zfw-go/zfw/testenv/ziti"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

// TestZitiRouterTProxyUsesTheZfwCommandAsItsDiverter runs OpenZiti's own
// edge router with its tunnel binding in tproxy:<examples/zfw> mode, as an
// operator configures a router to use zfw: the router execs the zfw
// command for every intercept of a service it may dial (IPv4 and IPv6,
// the IPv6 form with the "-o 0.0.0.0 -n 0" any source), the dataplane
// steers a client's IPv4 traffic into the router's TPROXY sockets with no
// iptables rule, and deleting the service removes its rules again.
//
// ziti v1.6.5's tproxy opens its TPROXY sockets on 127.0.0.1 only, so an
// IPv6 intercept has no socket of its family to go to: the dataplane must
// drop that traffic as having no listener rather than let it reach the
// host. No diverter can deliver it while the router listens so.
func TestZitiRouterTProxyUsesTheZfwCommandAsItsDiverter(t *testing.T) {
	testenv.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("starts a real OpenZiti network and a second router")
	}
	topo := testenv.NewTestTopology(t)
	n := zitinet.StartTest(t, zitinet.Options{Logger: testenv.Logger(t, logrus.InfoLevel)})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	zfwBin := buildZfw(t)

	singles, _ := freePorts(t, 1)
	port := singles[0]
	startServers(t, port)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// The dataplane's owner in the router namespace, serving its rules
	// on the control socket the router's diverter talks to.
	pin := pinPath(t)
	socket := control.SocketPath(pin)
	var fw *zfw.Firewall
	must("zfw.New in the router namespace", topo.Router.Do(func() error {
		var err error
		fw, err = zfw.New(zfw.Options{Interfaces: []zfw.Interface{{Name: topo.RouterClientIf}}, PinPath: pin, Logger: testenv.Logger(t, logrus.WarnLevel)})
		return err
	}))
	t.Cleanup(func() { fw.Close() })
	srv, err := control.Listen(socket, fw, control.ServerOptions{Logger: testenv.Logger(t, logrus.WarnLevel)})
	must("control socket", err)
	serveCtx, stopServe := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(serveCtx)
	}()
	t.Cleanup(func() {
		stopServe()
		srv.Close()
		<-served
	})

	// The service: hosted by `ziti tunnel host` through the quickstart
	// router, intercepted on an IPv4 and an IPv6 address.
	hoster, err := n.CreateIdentity(ctx, "router-hoster", "router-hosts")
	must("host identity", err)
	_, err = n.CreateConfig(ctx, "router-host", zitinet.HostV1{
		ForwardProtocol: true, AllowedProtocols: []string{"tcp", "udp"},
		Address: "127.0.0.1", Port: port,
	})
	must("host config", err)
	dst4 := netip.AddrPortFrom(netip.MustParseAddr("10.99.9.10"), port)
	dst6 := netip.AddrPortFrom(netip.MustParseAddr("fd00:99::10"), port)
	_, err = n.CreateConfig(ctx, "router-intercept", zitinet.InterceptV1{
		Protocols: []string{"tcp", "udp"}, Addresses: []string{dst4.Addr().String(), dst6.Addr().String()},
		PortRanges: []zitinet.PortRange{{Low: port, High: port}},
	})
	must("intercept config", err)
	serviceID, err := n.CreateService(ctx, zitinet.Service{Name: "routed", Configs: []string{"router-intercept", "router-host"}})
	must("service", err)
	_, err = n.CreateServicePolicy(ctx, "routed-bind", zitinet.Bind, []string{"@routed"}, []string{"#router-hosts"})
	must("bind policy", err)
	_, err = n.Host(ctx, hoster)
	must("ziti tunnel host", err)
	must("terminators", n.WaitTerminators(ctx, "routed", 1))

	// OpenZiti's router in the router namespace, reaching the controller
	// and the quickstart router through loopback forwards; it inherits
	// where the dataplane is through the environment and passes it to
	// every zfw it execs.
	fwd, err := topo.Router.ForwardLoopback(n.ControllerAddr(), n.RouterAddr())
	must("forward the controller and router into the router namespace", err)
	t.Cleanup(func() { fwd.Close() })
	router, err := n.StartRouter(ctx, zitinet.RouterOptions{
		Name:       "zfw-router",
		TunnelMode: "tproxy:" + zfwBin,
		Env:        []string{"ZFW_PIN_PATH=" + pin, "ZFW_CONTROL_SOCKET=" + socket},
		Start:      func(cmd *exec.Cmd) error { return topo.Router.Do(cmd.Start) },
	})
	must("ziti router with a zfw tunnel binding", err)
	defer func() {
		if t.Failed() {
			if out, err := os.ReadFile(router.LogPath()); err == nil {
				t.Logf("ziti router output:\n%s", out)
			}
		}
	}()
	// The router's tunneler identity may dial the service.
	_, err = n.CreateServicePolicy(ctx, "routed-dial", zitinet.Dial, []string{"@routed"}, []string{"@" + router.Name})
	must("dial policy", err)

	t.Run("the router's intercepts reach the dataplane for both families", func(t *testing.T) {
		err := testenv.Eventually(ctx, settle, "the router's rules", func() error {
			return serviceRules(fw, serviceID, map[netip.Prefix][]intercept.Protocol{
				netip.PrefixFrom(dst4.Addr(), 32):  {intercept.TCP, intercept.UDP},
				netip.PrefixFrom(dst6.Addr(), 128): {intercept.TCP, intercept.UDP},
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("IPv4 TCP is steered into the router", func(t *testing.T) {
		if err := testenv.Eventually(ctx, settle, "TCP through the router", tcpWorks(topo.Client, dst4, "routed")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("IPv4 UDP is steered into the router", func(t *testing.T) {
		if err := testenv.Eventually(ctx, settle, "UDP through the router", udpWorks(topo.Client, dst4, "routed")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("IPv6 without a router socket of its family is dropped, not passed", func(t *testing.T) {
		before, err := fw.Stats()
		must("stats", err)
		if _, _, err := exchangeTCP(topo.Client, dst6, "routed"); err == nil {
			t.Fatal("an IPv6 connection was answered, yet ziti v1.6.5's router has no IPv6 TPROXY socket")
		}
		after, err := fw.Stats()
		must("stats", err)
		if after.NoListener <= before.NoListener {
			t.Errorf("no-listener drops %d before, %d after an IPv6 SYN to an intercept: the packet went elsewhere", before.NoListener, after.NoListener)
		}
	})

	t.Run("no iptables or nftables TPROXY rule", func(t *testing.T) {
		noTProxyRules(t, topo.Router)
	})

	t.Run("deleting the service removes its rules", func(t *testing.T) {
		must("delete dial policy", n.Delete(ctx, "service-policy", "routed-dial"))
		err := testenv.Eventually(ctx, settle, "the router's rules removed", func() error {
			for _, r := range fw.Rules().List() {
				if r.ServiceID == serviceID {
					return fmt.Errorf("rule %s of the removed service is still in the dataplane", listing.Mapping(r))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := testenv.Eventually(ctx, settle, "IPv4 TCP no longer steered", func() error {
			if _, _, err := exchangeTCP(topo.Client, dst4, "routed"); err == nil {
				return errors.New("the removed service still answers")
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("every zfw command the router ran succeeded", func(t *testing.T) {
		out, err := os.ReadFile(router.LogPath())
		must("router log", err)
		if !bytes.Contains(out, []byte("diverter command succeeded")) {
			t.Fatal("the router log shows no diverter command")
		}
		for _, line := range bytes.Split(out, []byte("\n")) {
			if bytes.Contains(line, []byte("diverter command failed")) {
				t.Errorf("router: %s", line)
			}
		}
	})
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Error("ran out of time")
	}
}

// serviceRules reports whether fw holds a rule of service serviceID for
// each destination and protocol in want, each steering to a port.
func serviceRules(fw *zfw.Firewall, serviceID string, want map[netip.Prefix][]intercept.Protocol) error {
	type key struct {
		dst   netip.Prefix
		proto intercept.Protocol
	}
	found := map[key]bool{}
	for _, r := range fw.Rules().List() {
		if r.ServiceID != serviceID {
			continue
		}
		if r.TProxyPort == 0 {
			return fmt.Errorf("rule %s steers to no port", listing.Mapping(r))
		}
		found[key{r.Destination, r.Protocol}] = true
	}
	var missing []string
	for dst, protos := range want {
		for _, p := range protos {
			if !found[key{dst, p}] {
				missing = append(missing, fmt.Sprintf("%s %s", p, dst))
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no rule of service %s for %v", serviceID, missing)
	}
	return nil
}
