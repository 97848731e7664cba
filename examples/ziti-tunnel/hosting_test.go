package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/openziti/sdk-golang/ziti"
	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/testenv"
	zitinet "github.com/zfw-go/zfw/testenv/ziti"
)

// whoServer answers each TCP connection and each UDP datagram, in the
// topology's server namespace, with "<message> from <the address it
// came from>", so a test sees which source a connection was opened
// from.
func whoServer(t *testing.T, ns *testenv.Namespace, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := ns.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp", addr.String()); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", addr.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 512)
				n, err := c.Read(buf)
				if err == nil {
					fmt.Fprintf(c, "%s from %s", buf[:n], c.RemoteAddr())
				}
			})
		}
	})
	wg.Go(func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(fmt.Appendf(nil, "%s from %s", buf[:n], from), from)
		}
	})
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		wg.Wait()
	})
}

// ask dials service over Ziti with appData and returns the answer to
// msg (everything up to EOF, or one message for UDP).
func ask(zctx sdk.Context, service string, appData map[string]string, msg string) (string, error) {
	opts := &sdk.DialOptions{ConnectTimeout: 10 * time.Second}
	if appData != nil {
		b, err := json.Marshal(appData)
		if err != nil {
			return "", err
		}
		opts.AppData = b
	}
	c, err := zctx.DialWithOptions(service, opts)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	if appData[zitiProtocol] == "udp" {
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	b, err := io.ReadAll(c)
	if err == nil && len(b) == 0 {
		err = io.EOF // closed without an answer
	}
	return string(b), err
}

const zitiProtocol = "dst_protocol"

// The tunneler hosts the services its identity may bind: a client
// dialling through the network's router reaches the host.v1 address,
// from the tunneler's own address, or with allowedSourceAddresses from
// the client's address it asked for (AppData source_addr), made local
// for the replies while the service is hosted; a source outside them is
// refused.
func TestTunnelerHostsServicesForClientsDiallingThroughARealRouter(t *testing.T) {
	testenv.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("starts a real OpenZiti network")
	}
	topo := testenv.NewTestTopology(t)
	n := zitinet.StartTest(t, zitinet.Options{Logger: testenv.Logger(t, logrus.InfoLevel)})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	singles, _ := freePorts(t, 1)
	target := netip.AddrPortFrom(topo.ServerAddr4.Addr(), singles[0])
	whoServer(t, topo.Server, target)

	hostID, err := n.CreateIdentity(ctx, "zt-hoster", "our-hosts")
	must("host identity", err)
	dialID, err := n.CreateIdentity(ctx, "dialer", "dialers")
	must("dial identity", err)
	_, err = n.CreateConfig(ctx, "fixed-host", zitinet.HostV1{Protocol: "tcp", Address: target.Addr().String(), Port: target.Port()})
	must("fixed host config", err)
	_, err = n.CreateConfig(ctx, "transparent-host", zitinet.HostV1{
		ForwardProtocol: true, AllowedProtocols: []string{"tcp", "udp"},
		Address: target.Addr().String(), Port: target.Port(),
		AllowedSourceAddresses: []string{"10.77.0.0/24"},
	})
	must("transparent host config", err)
	for name, cfg := range map[string]string{"fixed": "fixed-host", "transparent": "transparent-host"} {
		_, err := n.CreateService(ctx, zitinet.Service{Name: name, Configs: []string{cfg}, RoleAttributes: []string{"ours"}})
		must("service "+name, err)
	}
	_, err = n.CreateServicePolicy(ctx, "ours-bind", zitinet.Bind, []string{"#ours"}, []string{"#our-hosts"})
	must("bind policy", err)
	_, err = n.CreateServicePolicy(ctx, "ours-dial", zitinet.Dial, []string{"#ours"}, []string{"#dialers"})
	must("dial policy", err)

	_, _, stop := startTunneler(t, topo, hostID)
	for _, s := range []string{"fixed", "transparent"} {
		must("terminators of "+s, n.WaitTerminators(ctx, s, 1))
	}
	dialer := sdkContext(t, dialID)
	routerSide := topo.RouterServerAddr4.Addr().String()
	local := func(addr string) bool {
		out, err := topo.Router.Exec(ctx, "ip", "route", "get", addr)
		return err == nil && strings.HasPrefix(string(out), "local ")
	}

	t.Run("to the configured address, from the tunneler's own", func(t *testing.T) {
		var got string
		err := testenv.Eventually(ctx, settle, "fixed", func() error {
			var err error
			got, err = ask(dialer, "fixed", nil, "hello")
			return err
		})
		if err != nil || !strings.HasPrefix(got, "hello from "+routerSide+":") {
			t.Errorf("answer %q, %v; want it from %s", got, err, routerSide)
		}
	})
	t.Run("from the client's address, TCP and UDP", func(t *testing.T) {
		if !local("10.77.0.5") {
			t.Error("the allowed source addresses are not local while the service is hosted")
		}
		for _, proto := range []string{"tcp", "udp"} {
			var got string
			err := testenv.Eventually(ctx, settle, "transparent "+proto, func() error {
				var err error
				got, err = ask(dialer, "transparent", map[string]string{zitiProtocol: proto, "source_addr": "10.77.0.5:0"}, "hi")
				return err
			})
			if err != nil || !strings.HasPrefix(got, "hi from 10.77.0.5:") {
				t.Errorf("%s: answer %q, %v; want it from 10.77.0.5", proto, got, err)
			}
		}
	})
	t.Run("a source outside the allowed ones is refused", func(t *testing.T) {
		got, err := ask(dialer, "transparent", map[string]string{zitiProtocol: "tcp", "source_addr": "10.78.0.5:0"}, "hi")
		if err == nil {
			t.Errorf("answer %q from a source that is not allowed", got)
		}
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if local("10.77.0.5") {
		t.Error("the allowed source addresses stay local after the tunneler stopped")
	}
}
