package main

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// buildZfw builds the zfw command (examples/zfw) into a temporary folder.
func buildZfw(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "zfw")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/zfw-go/zfw/examples/zfw").CombinedOutput()
	if err != nil {
		t.Fatalf("build examples/zfw: %v\n%s", err, out)
	}
	return bin
}

// startInNamespace starts cmd from a thread inside ns, so the process runs
// in ns (it keeps the test's mount namespace, /sys/fs/bpf included). It is
// stopped, SIGTERM then SIGKILL, when tb ends.
func startInNamespace(tb testing.TB, ns *testenv.Namespace, cmd *exec.Cmd) {
	tb.Helper()
	if err := ns.Do(cmd.Start); err != nil {
		tb.Fatalf("start %s in %s: %v", cmd.Path, ns, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
}

// noTProxyRules fails t if iptables or nftables in ns hold a TPROXY rule.
// A tool that is not installed proves nothing: under CI that fails too.
func noTProxyRules(t *testing.T, ns *testenv.Namespace) {
	t.Helper()
	for _, tool := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"nft", "list", "ruleset"}} {
		found, err := tproxyRules(t.Context(), ns, tool)
		switch {
		case err != nil && testenv.Required():
			t.Errorf("%s: %v: cannot prove there is no TPROXY rule", strings.Join(tool, " "), err)
		case err != nil:
			t.Logf("%s: %v; not checked", strings.Join(tool, " "), err)
		case found != "":
			t.Errorf("%s in %s shows a TPROXY rule:\n%s", strings.Join(tool, " "), ns, found)
		}
	}
}

// tproxyRules returns the ruleset a tool prints in ns if it holds a TPROXY
// rule, and "" if not.
func tproxyRules(ctx context.Context, ns *testenv.Namespace, tool []string) (string, error) {
	if _, err := exec.LookPath(tool[0]); err != nil {
		return "", err
	}
	out, err := ns.Exec(ctx, tool[0], tool[1:]...)
	if err != nil {
		return "", err
	}
	if strings.Contains(strings.ToLower(string(out)), "tproxy") {
		return string(out), nil
	}
	return "", nil
}

// TestTProxyRuleCheckSeesIPTablesRules: the check the drop-in test relies
// on finds a TPROXY rule where there is one.
func TestTProxyRuleCheckSeesIPTablesRules(t *testing.T) {
	testenv.RequirePrivileged(t)
	ns := testenv.NewTestNamespace(t, "tpcheck")
	if _, err := exec.LookPath("iptables"); err != nil {
		if testenv.Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	for _, tool := range [][]string{{"iptables-save"}, {"nft", "list", "ruleset"}} {
		if found, err := tproxyRules(t.Context(), ns, tool); err != nil || found != "" {
			t.Fatalf("%s in a new namespace: %q, %v", tool[0], found, err)
		}
	}
	if out, err := ns.Exec(t.Context(), "iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-d", "10.99.0.1", "--dport", "80",
		"-j", "TPROXY", "--on-ip", "127.0.0.1", "--on-port", "9999", "--tproxy-mark", "0x1/0x1"); err != nil {
		t.Fatalf("add a TPROXY rule: %v: %s", err, out)
	}
	if found, err := tproxyRules(t.Context(), ns, []string{"iptables-save"}); err != nil || found == "" {
		t.Errorf("iptables-save after adding a TPROXY rule: found %q, %v", found, err)
	}
}

func TestZitiTunnelTProxyUsesTheZfwCommandAsItsDiverter(t *testing.T) {
	testenv.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("starts a real OpenZiti network")
	}
	topo := testenv.NewTestTopology(t)
	n := zitinet.StartTest(t, zitinet.Options{Logger: testenv.Logger(t, logrus.InfoLevel)})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
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
	client, err := n.CreateIdentity(ctx, "tproxy-client", "clients")
	must("client identity", err)
	hoster, err := n.CreateIdentity(ctx, "hoster", "hosts")
	must("host identity", err)
	_, err = n.CreateConfig(ctx, "dropin-host", zitinet.HostV1{
		ForwardProtocol: true, AllowedProtocols: []string{"tcp", "udp"},
		Address: "127.0.0.1", Port: port,
	})
	must("host config", err)
	dst := netip.AddrPortFrom(netip.MustParseAddr("10.99.9.10"), port)
	_, err = n.CreateConfig(ctx, "dropin-intercept", zitinet.InterceptV1{
		Protocols: []string{"tcp", "udp"}, Addresses: []string{dst.Addr().String()},
		PortRanges: []zitinet.PortRange{{Low: port, High: port}},
	})
	must("intercept config", err)
	serviceID, err := n.CreateService(ctx, zitinet.Service{Name: "dropin", Configs: []string{"dropin-intercept", "dropin-host"}})
	must("service", err)
	_, err = n.CreateServicePolicy(ctx, "dropin-bind", zitinet.Bind, []string{"@dropin"}, []string{"#hosts"})
	must("bind policy", err)
	_, err = n.CreateServicePolicy(ctx, "dropin-dial", zitinet.Dial, []string{"@dropin"}, []string{"#clients"})
	must("dial policy", err)
	_, err = n.Host(ctx, hoster)
	must("ziti tunnel host", err)
	must("terminators", n.WaitTerminators(ctx, "dropin", 1))

	// The dataplane's owner: attached to the router's client-facing
	// interface, serving its rules on the control socket the diverter
	// talks to.
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

	// OpenZiti's own tunneler in the router namespace, reaching the
	// controller and router through loopback forwards.
	fwd, err := topo.Router.ForwardLoopback(n.ControllerAddr(), n.RouterAddr())
	must("forward the controller and router into the router namespace", err)
	t.Cleanup(func() { fwd.Close() })
	logPath := filepath.Join(t.TempDir(), "ziti-tunnel-tproxy.log")
	logFile, err := os.Create(logPath)
	must("tproxy log", err)
	defer logFile.Close()
	cmd := exec.Command(n.Binary(), "tunnel", "tproxy", "--identity", client.File, "--diverter", zfwBin,
		"--cli-agent=false", "--svcPollRate", "1")
	cmd.Env = append(os.Environ(), "ZFW_PIN_PATH="+pin, "ZFW_CONTROL_SOCKET="+socket)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	startInNamespace(t, topo.Router, cmd)
	defer func() {
		if t.Failed() {
			if out, err := os.ReadFile(logPath); err == nil {
				t.Logf("ziti tunnel tproxy output:\n%s", out)
			}
		}
	}()

	t.Run("TCP is intercepted through the dataplane", func(t *testing.T) {
		err := testenv.Eventually(ctx, settle, "TCP through ziti tunnel tproxy", tcpWorks(topo.Client, dst, "drop-in"))
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("UDP is intercepted through the dataplane", func(t *testing.T) {
		err := testenv.Eventually(ctx, settle, "UDP through ziti tunnel tproxy", udpWorks(topo.Client, dst, "drop-in"))
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the diverter's rules steered the traffic", func(t *testing.T) {
		want := netip.PrefixFrom(dst.Addr(), 32)
		found := map[intercept.Protocol]bool{}
		for _, r := range fw.Rules().List() {
			if r.ServiceID != serviceID || r.Destination != want {
				continue
			}
			found[r.Protocol] = true
			if r.TProxyPort == 0 {
				t.Errorf("rule %s steers to no port", listing.Mapping(r))
			}
			if r.Hits == 0 {
				t.Errorf("rule %s decided nothing, yet its traffic went through", listing.Mapping(r))
			}
		}
		for _, p := range []intercept.Protocol{intercept.TCP, intercept.UDP} {
			if !found[p] {
				t.Errorf("no %s rule of service %s for %s in the dataplane", p, serviceID, want)
			}
		}
	})

	t.Run("no iptables or nftables TPROXY rule", func(t *testing.T) {
		noTProxyRules(t, topo.Router)
	})
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Error("ran out of time")
	}
}
