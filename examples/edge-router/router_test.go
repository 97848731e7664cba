package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/tproxy"
	"github.com/zfw-go/zfw/zfw/control"
)

// instance is one `edge-router run` inside the router namespace.
type instance struct {
	cancel context.CancelFunc
	done   chan int
	log    testenv.Buffer
	once   sync.Once
	code   int
}

// startRouter runs `edge-router run args...` in the router namespace
// and waits until its control socket answers. The test's cleanup stops
// it if the test does not.
func startRouter(t *testing.T, ns *testenv.Namespace, socket string, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan int, 1)}
	go func() {
		code := -1
		ns.Do(func() error {
			code = run(ctx, append([]string{"run"}, args...), io.Discard, &in.log)
			return nil
		})
		in.done <- code
	}()
	t.Cleanup(func() { in.stop(t) })
	deadline := time.After(30 * time.Second)
	for {
		c, err := control.Dial(ctx, socket)
		if err == nil {
			c.Close()
			return in
		}
		select {
		case code := <-in.done:
			in.done <- code
			t.Fatalf("edge-router exited with %d before serving:\n%s", code, in.log.String())
		case <-deadline:
			t.Fatalf("edge-router did not serve %s:\n%s", socket, in.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the run as SIGTERM would and returns its exit status.
func (in *instance) stop(t *testing.T) int {
	in.once.Do(func() {
		in.cancel()
		select {
		case in.code = <-in.done:
		case <-time.After(30 * time.Second):
			in.code = -1
			t.Errorf("edge-router did not stop:\n%s", in.log.String())
		}
		if t.Failed() {
			t.Logf("edge-router log:\n%s", in.log.String())
		}
	})
	return in.code
}

// buildZFW builds the operator CLI, examples/zfw.
func buildZFW(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command builds examples/zfw: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "zfw")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, "github.com/zfw-go/zfw/examples/zfw").CombinedOutput(); err != nil {
		t.Fatalf("go build examples/zfw: %v\n%s", err, out)
	}
	return bin
}

// zfwCLI runs the operator CLI against the router's socket.
func zfwCLI(t *testing.T, bin, pin, socket string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--pin-path", pin, "--control-socket", socket}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zfw %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// serve accepts on ln and runs handle for each connection until tb ends:
// then it closes ln and every connection still open (a peer behind a
// namespace already deleted never hangs up), and waits for the handlers.
func serve(tb testing.TB, ln net.Listener, handle func(net.Conn)) {
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	wait := testenv.Serve(ln.Accept, func(c net.Conn) {
		mu.Lock()
		open[c] = true
		mu.Unlock()
		handle(c)
		mu.Lock()
		delete(open, c)
		mu.Unlock()
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wait()
	})
}

// echoPeer answers each line with the line and the peer's address.
func echoPeer(c net.Conn) {
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		fmt.Fprintf(c, "%s %s\n", sc.Text(), c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr())
	}
}

// echoLocal answers each line with the line and the connection's local
// address (for a TPROXY listener: the client's original destination).
func echoLocal(c net.Conn) {
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		fmt.Fprintf(c, "%s %s\n", sc.Text(), c.LocalAddr())
	}
}

// listen opens a TCP listener inside ns, closed with its connections
// when the test ends.
func listen(t *testing.T, ns *testenv.Namespace, addr string, handle func(net.Conn)) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, ln, handle)
	return ln
}

func dial(ns *testenv.Namespace, dst string) (net.Conn, error) {
	return ns.DialTCP(dst, 3*time.Second)
}

// dialAsk opens a connection, asks one line and closes it.
func dialAsk(ns *testenv.Namespace, dst, msg string) (string, error) {
	c, err := dial(ns, dst)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return testenv.AskLine(c, msg)
}

// TestRouterInNamespaces runs edge-router in the router namespace of a
// client—router—server topology, the client side internal and the
// server side external with masquerade, and drives it the way an
// operator and OpenZiti's router do.
func TestRouterInNamespaces(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	pin := testenv.PinPath(t, "er")
	dir := t.TempDir()
	socket := filepath.Join(dir, "run", "zfw.sock")
	config := filepath.Join(dir, "ebpf_config.json")
	rulesFile := filepath.Join(dir, "user_rules.txt")
	routerOut := topo.RouterServerAddr4.Addr()
	server := topo.ServerAddr4.Addr()
	if err := os.WriteFile(config, fmt.Appendf(nil, `{
  "InternalInterfaces": [{"Name": %q, "OutboundPassThroughTrack": true, "PerInterfaceRules": false}],
  "ExternalInterfaces": [{"Name": %q, "Masquerade": true, "Verbose": true}]
}`, topo.RouterClientIf, topo.RouterServerIf), 0o600); err != nil {
		t.Fatal(err)
	}
	// The router's own service port 9001 is opened on the external side.
	if err := os.WriteFile(rulesFile, fmt.Appendf(nil, "# router listener\n/opt/openziti/bin/zfw -I -c %s -m 32 -p tcp -l 9001 -h 9001 -t 0 -N %s\n",
		routerOut, topo.RouterServerIf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", config, "--rules", rulesFile, "--pin-path", pin, "--control-socket", socket,
		"--metrics-addr", "127.0.0.1:0", "--log-level", "debug"}

	srv := listen(t, topo.Server, netip.AddrPortFrom(server, 0).String(), echoPeer)
	srvAddr := srv.Addr().String()
	listen(t, topo.Client, ":7779", echoPeer)
	clientSvc := netip.AddrPortFrom(topo.ClientAddr4.Addr(), 7779).String()
	listen(t, topo.Router, netip.AddrPortFrom(routerOut, 9001).String(), echoPeer)
	listen(t, topo.Router, netip.AddrPortFrom(routerOut, 9002).String(), echoPeer)
	// Without the router's firewall the server reaches the client.
	if _, err := dialAsk(topo.Server, clientSvc, "before"); err != nil {
		t.Fatalf("server to client without the firewall: %v", err)
	}
	bin := buildZFW(t)

	first := startRouter(t, topo.Router, socket, args...)

	// (1) The client reaches the server, which sees the router's address.
	c, err := dial(topo.Client, srvAddr)
	if err != nil {
		t.Fatalf("client to server through the router: %v", err)
	}
	defer c.Close()
	if got, err := testenv.AskLine(c, "hello"); err != nil || got != "hello "+routerOut.String() {
		t.Fatalf("server answered %q (%v), want it to have seen the router's %s", got, err, routerOut)
	}

	// (2) Nothing unsolicited gets in from the external side.
	if got, err := dialAsk(topo.Server, clientSvc, "unsolicited"); err == nil {
		t.Errorf("server reached the client through the external interface: %q", got)
	}
	// The external interface is verbose: the drop is logged.
	if err := testenv.Eventually(t.Context(), 10*time.Second, "a drop event for "+clientSvc+" in the log", func() error {
		if !strings.Contains(first.log.String(), "> "+clientSvc+" | DROP") {
			return errors.New("not logged")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	// The rules file opened 9001 on the router; 9002 stays closed.
	if got, err := dialAsk(topo.Server, netip.AddrPortFrom(routerOut, 9001).String(), "svc"); err != nil || got != "svc "+server.String() {
		t.Errorf("router port opened by the rules file: %q, %v", got, err)
	}
	if _, err := dialAsk(topo.Server, netip.AddrPortFrom(routerOut, 9002).String(), "closed"); err == nil {
		t.Error("server reached a router port no rule opens")
	}

	// (3) The operator CLI steers the client's connections to port 8080
	// of the server to a listener in the router, as a ziti router would.
	intercepted := netip.AddrPortFrom(server, 8080).String()
	if _, err := dialAsk(topo.Client, intercepted, "x"); err == nil {
		t.Fatal("something answers on the server's port 8080 before any rule")
	}
	var tln *tproxy.TCPListener
	if err := topo.Router.Do(func() error {
		var err error
		tln, err = tproxy.ListenTCP(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, tln, echoLocal)
	tport := tln.Port()
	zfwCLI(t, bin, pin, socket, "-I", "-c", server.String(), "-m", "32", "-p", "tcp", "-o", "0.0.0.0", "-n", "0",
		"-l", "8080", "-h", "8080", "-t", fmt.Sprint(tport), "-s", "edgeRouterTestService")
	if got, err := dialAsk(topo.Client, intercepted, "steered"); err != nil || got != "steered "+intercepted {
		t.Errorf("connection to %s after zfw -I: %q, %v; want the router's listener", intercepted, got, err)
	}
	listing := zfwCLI(t, bin, pin, socket, "-L")
	for _, want := range []string{"edgeRouterTestService", fmt.Sprintf("TPROXY redirect 127.0.0.1:%d", tport), server.String() + "/32", "dpts=9001:9001 PASSTHRU", "Rule Count: 2 /"} {
		if !strings.Contains(listing, want) {
			t.Errorf("zfw -L lacks %q:\n%s", want, listing)
		}
	}

	// Metrics, fetched inside the router namespace.
	m := regexp.MustCompile(`serving metrics at /metrics" addr="?([0-9.:]+)`).FindStringSubmatch(first.log.String())
	if m == nil {
		t.Errorf("no metrics address in the log:\n%s", first.log.String())
	} else if body, err := getMetrics(topo.Router, m[1]); err != nil || !strings.Contains(body, "zfw_rules") {
		t.Errorf("metrics: %v\n%s", err, body)
	}

	// (4) Stop (the dataplane stays) and start again: the established
	// connection goes on, the rules are adopted, not doubled.
	if code := first.stop(t); code != 0 {
		t.Fatalf("first run exited with %d", code)
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("control socket left after stop: %v", err)
	}
	if _, err := os.Stat(pin); err != nil {
		t.Fatalf("dataplane not kept: %v", err)
	}
	if got, err := testenv.AskLine(c, "between"); err != nil || got != "between "+routerOut.String() {
		t.Fatalf("connection while no router runs: %q, %v", got, err)
	}
	second := startRouter(t, topo.Router, socket, append(args, "--clean")...)
	if !strings.Contains(second.log.String(), "adopted=true") {
		t.Errorf("second run did not adopt the dataplane:\n%s", second.log.String())
	}
	if got, err := testenv.AskLine(c, "after"); err != nil || got != "after "+routerOut.String() {
		t.Errorf("connection after the restart: %q, %v", got, err)
	}
	if got, err := dialAsk(topo.Client, intercepted, "again"); err != nil || got != "again "+intercepted {
		t.Errorf("rule inserted with zfw lost in the restart: %q, %v", got, err)
	}
	if l := zfwCLI(t, bin, pin, socket, "-L"); !strings.Contains(l, "Rule Count: 2 /") {
		t.Errorf("rules after the restart:\n%s", l)
	}
	if _, err := dialAsk(topo.Server, clientSvc, "unsolicited"); err == nil {
		t.Error("after the restart the server reached the client")
	}
	// --clean removes the dataplane on stop.
	if code := second.stop(t); code != 0 {
		t.Fatalf("second run exited with %d", code)
	}
	if _, err := os.Stat(pin); !os.IsNotExist(err) {
		t.Errorf("--clean left the dataplane at %s: %v", pin, err)
	}
}

// getMetrics fetches /metrics from addr inside ns. The connection is
// dialed in ns by hand: net/http dials on goroutines of its own, outside
// the namespace.
func getMetrics(ns *testenv.Namespace, addr string) (string, error) {
	c, err := dial(ns, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	req.Close = true
	if err := req.Write(c); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return string(body), err
}
