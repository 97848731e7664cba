package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	sdk "github.com/openziti/sdk-golang/ziti"

	"github.com/zfw-go/zfw/internal/bench"
	"github.com/zfw-go/zfw/testenv"
	zitinet "github.com/zfw-go/zfw/testenv/ziti"
)

// createResults is the time from creating a service on the controller to
// the first connection the tunneler intercepts for it succeeding.
type createResults struct {
	services int
	// toConnect runs from the start of the create call; createCall is
	// the create call alone (the ziti CLI, a process per call).
	toConnect, createCall bench.Timing
	// refresh is the tunneler's service refresh interval in this run,
	// defaultRefresh the tunneler's default.
	refresh, defaultRefresh string
}

// Role attributes the section's policies select its services by.
const (
	benchDialRole = "zfwbench-intercepted"
	benchBindRole = "zfwbench-hosted"
)

// pollEvery is how often the client retries the intercepted address.
const pollEvery = 20 * time.Millisecond

// createToConnect runs a real OpenZiti network and the examples/ziti-tunnel
// binary in the router namespace of a topology, then creates services one
// at a time and times each until a connection from the client namespace
// to its intercepted address gets the hosting side's reply.
func createToConnect(ctx context.Context, cfg config, work string) (createResults, error) {
	res := createResults{services: cfg.zitiCreates}
	zitiBin, err := zitiBinary(ctx)
	if err != nil {
		return res, err
	}
	tunnelBin, err := goBuild(ctx, work, "github.com/zfw-go/zfw/examples/ziti-tunnel")
	if err != nil {
		return res, err
	}
	defaultRefresh, err := tunnelerDefaultRefresh(ctx, tunnelBin)
	if err != nil {
		return res, err
	}
	res.refresh, res.defaultRefresh = defaultRefresh, defaultRefresh
	if cfg.zitiRefresh != "" {
		res.refresh = cfg.zitiRefresh
	}

	if _, err := testenv.CleanupStale("zfwbench-"); err != nil {
		cfg.log.WithError(err).Warn("removing stale namespaces")
	}
	topo, err := testenv.NewTopology(ctx, "zfwbench-")
	if err != nil {
		return res, err
	}
	defer topo.Close()
	n, err := zitinet.Start(ctx, zitinet.Options{Binary: zitiBin, Dir: work, Logger: cfg.log})
	if err != nil {
		return res, err
	}
	defer n.Close()

	client, err := n.CreateIdentity(ctx, "zfwbench-tunneler", "zfwbench-clients")
	if err != nil {
		return res, err
	}
	host, err := n.CreateIdentity(ctx, "zfwbench-host", "zfwbench-hosts")
	if err != nil {
		return res, err
	}
	if _, err := n.CreateServicePolicy(ctx, "zfwbench-dial", zitinet.Dial, []string{"#" + benchDialRole}, []string{"#zfwbench-clients"}); err != nil {
		return res, err
	}
	if _, err := n.CreateServicePolicy(ctx, "zfwbench-bind", zitinet.Bind, []string{"#" + benchBindRole}, []string{"#zfwbench-hosts"}); err != nil {
		return res, err
	}
	// The hosting side: this process binds each service as soon as it
	// exists. Its own refresh loop is kept out of the way (a service is
	// looked up on demand), so only the tunneler's refresh is measured.
	hosting, err := zitinet.NewContext(host, &sdk.Options{RefreshInterval: time.Hour})
	if err != nil {
		return res, err
	}
	defer hosting.Close()

	// A first service, there before the tunneler starts: once it is
	// intercepted the tunneler has authenticated and the path works.
	ready := benchService{name: "zfwbench-ready", dst: netip.MustParseAddrPort("10.99.7.9:443")}
	if _, err := ready.create(ctx, n); err != nil {
		return res, err
	}

	fwd, err := topo.Router.ForwardLoopback(n.ControllerAddr(), n.RouterAddr())
	if err != nil {
		return res, err
	}
	defer fwd.Close()
	pin := benchPin()
	defer os.RemoveAll(pin)
	args := []string{"run", "--identity", client.File, "--interface", topo.RouterClientIf, "--pin-path", pin, "--dns", "", "--log-level", "warning"}
	if cfg.zitiRefresh != "" {
		args = append(args, "--refresh", cfg.zitiRefresh)
	}
	logPath := filepath.Join(work, "ziti-tunnel.log")
	stop, err := startInNamespace(topo.Router, tunnelBin, args, logPath)
	if err != nil {
		return res, err
	}
	defer stop()
	withLog := func(err error) error {
		if b, rerr := os.ReadFile(logPath); rerr == nil && len(b) > 0 {
			return fmt.Errorf("%w; ziti-tunnel's output:\n%s", err, tail(b, 2000))
		}
		return err
	}
	if _, err := reachThrough(ctx, topo.Client, hosting, ready, 2*time.Minute); err != nil {
		return res, withLog(fmt.Errorf("the tunneler never intercepted a service: %w", err))
	}

	refresh, err := time.ParseDuration(res.refresh)
	if err != nil {
		return res, fmt.Errorf("refresh interval %q: %w", res.refresh, err)
	}
	var toConnect, createCall []time.Duration
	for k := range cfg.zitiCreates {
		svc := benchService{name: fmt.Sprintf("zfwbench-%d", k), dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 99, 7, byte(10 + k)}), 443)}
		if _, err := n.CreateConfig(ctx, svc.name+"-intercept", svc.intercept()); err != nil {
			return res, err
		}
		// Rounds follow one another, and each ends just after a refresh:
		// a random pause puts each creation at a random point of the
		// tunneler's refresh cycle, as a user's would be.
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(rand.N(refresh)):
		}
		start := time.Now()
		if _, err := n.CreateService(ctx, svc.service()); err != nil {
			return res, err
		}
		createCall = append(createCall, time.Since(start))
		d, err := reachThrough(ctx, topo.Client, hosting, svc, 3*refresh+time.Minute)
		if err != nil {
			return res, withLog(fmt.Errorf("service %d: %w", k, err))
		}
		toConnect = append(toConnect, d+createCall[k])
	}
	res.toConnect, res.createCall = bench.Summarize(toConnect), bench.Summarize(createCall)
	if err := stop(); err != nil {
		return res, withLog(err)
	}
	return res, nil
}

// zitiBinary is the ziti executable `make ziti` built; it is an error,
// saying to run `make ziti`, if there is none.
func zitiBinary(ctx context.Context) (string, error) {
	bin, err := zitinet.Binary(ctx, zitinet.BinaryOptions{NoBuild: true})
	if errors.Is(err, zitinet.ErrNotBuilt) {
		return "", fmt.Errorf("%w: run `make ziti` first (it builds and caches the ziti binary, a few minutes)", err)
	}
	return bin, err
}

// benchService is one service the section creates: TCP to one address
// and port, hosted by this process.
type benchService struct {
	name string
	dst  netip.AddrPort
}

func (s benchService) intercept() zitinet.InterceptV1 {
	return zitinet.InterceptV1{Protocols: []string{"tcp"}, Addresses: []string{s.dst.Addr().String()},
		PortRanges: []zitinet.PortRange{{Low: s.dst.Port(), High: s.dst.Port()}}}
}

func (s benchService) service() zitinet.Service {
	return zitinet.Service{Name: s.name, Configs: []string{s.name + "-intercept"}, RoleAttributes: []string{benchDialRole, benchBindRole}}
}

// create creates the service's config and the service.
func (s benchService) create(ctx context.Context, n *zitinet.Network) (string, error) {
	if _, err := n.CreateConfig(ctx, s.name+"-intercept", s.intercept()); err != nil {
		return "", err
	}
	return n.CreateService(ctx, s.service())
}

// reachThrough binds svc in hosting (answering every connection with the
// service's name) and, every pollEvery, starts a connection from client
// to svc's address, until one gets the answer or timeout. Attempts
// overlap: one the tunneler holds (dialing a service not hosted yet)
// does not delay the next. It returns how long the first answer took.
// The service stays bound until it returns.
func reachThrough(ctx context.Context, client *testenv.Namespace, hosting sdk.Context, svc benchService, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { host(ctx, hosting, svc.name) })

	type result struct {
		took time.Duration
		err  error
	}
	results := make(chan result, maxAttempts)
	slots := make(chan struct{}, maxAttempts)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case slots <- struct{}{}:
			wg.Go(func() {
				defer func() { <-slots }()
				got, err := exchange(ctx, client, svc.dst)
				if err == nil && got != svc.name {
					err = fmt.Errorf("answer %q, want %q", got, svc.name)
				}
				select {
				case results <- result{time.Since(start), err}:
				case <-ctx.Done():
				}
			})
		default: // maxAttempts pending: skip this tick
		}
		for waiting := true; waiting; {
			select {
			case r := <-results:
				if r.err == nil {
					return r.took, nil
				}
				lastErr = r.err
			case <-tick.C:
				waiting = false
			case <-ctx.Done():
				return 0, fmt.Errorf("no answer through %s within %s (last error: %v)", svc.dst, timeout, lastErr)
			}
		}
	}
}

// maxAttempts bounds the connection attempts reachThrough has pending.
const maxAttempts = 64

// host binds the service as soon as hosting can see it, then answers
// each connection with the service's name until ctx ends.
func host(ctx context.Context, hosting sdk.Context, service string) {
	var l net.Listener
	for l == nil {
		if _, err := hosting.RefreshService(service); err == nil {
			l, _ = hosting.Listen(service)
		}
		if l != nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pollEvery):
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, service)
		})
	}
}

// exchange connects from ns to dst and reads until the other side
// closes, or ctx ends.
func exchange(ctx context.Context, ns *testenv.Namespace, dst netip.AddrPort) (string, error) {
	c, err := ns.DialTCP(dst.String(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	return string(got), err
}

// refreshDefaultRE finds the --refresh flag's default in the tunneler's
// usage (the flag package's PrintDefaults).
var refreshDefaultRE = regexp.MustCompile(`-refresh duration\n[^\n]*\(default ([^)]+)\)`)

// tunnelerDefaultRefresh asks the tunneler binary for its default
// service refresh interval.
func tunnelerDefaultRefresh(ctx context.Context, bin string) (string, error) {
	out, _ := exec.CommandContext(ctx, bin, "run", "-h").CombinedOutput()
	m := refreshDefaultRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s run -h shows no default for --refresh:\n%s", bin, out)
	}
	return string(m[1]), nil
}

// startInNamespace starts bin in ns (it keeps this process's mount
// namespace, /sys/fs/bpf included), its output to logPath. stop sends
// SIGTERM, kills it if it has not exited 30 seconds later, and reports
// an exit other than a clean one; it may be called again.
func startInNamespace(ns *testenv.Namespace, bin string, args []string, logPath string) (stop func() error, err error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := ns.Do(cmd.Start); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s in %s: %w", bin, ns, err)
	}
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		logFile.Close()
	}()
	var once sync.Once
	var stopErr error
	return func() error {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case stopErr = <-exited:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-exited
				stopErr = errors.New("did not stop within 30s of SIGTERM; killed")
			}
			if stopErr != nil {
				stopErr = fmt.Errorf("%s: %w", filepath.Base(bin), stopErr)
			}
		})
		return stopErr
	}, nil
}

// tail is the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
