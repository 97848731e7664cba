package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/bench"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/tproxy"
	"github.com/zfw-go/zfw/zfw"
)

// interceptor is what stands between the client and the listener in
// one end-to-end configuration.
type interceptor int

const (
	noInterception interceptor = iota
	zfwDataplane
	iptablesTProxy
)

// e2eSetup is one end-to-end configuration.
type e2eSetup struct {
	kind interceptor
	// intercepts installed (zero for noInterception).
	intercepts int
}

func (s e2eSetup) String() string {
	switch s.kind {
	case zfwDataplane:
		return "zfw, " + intercepts(s.intercepts)
	case iptablesTProxy:
		return fmt.Sprintf("iptables TPROXY, %s rules", count(s.intercepts))
	default:
		return "no interception (plain listener: the limit)"
	}
}

// e2eRow is one configuration's results over rounds.
type e2eRow struct {
	setup       e2eSetup
	conns, bits bench.Spread
	// connsRatio, bitsRatio: median over rounds of the result over the
	// mean of the limit's just before and just after it.
	connsRatio   float64
	bitsRatio    float64
	connsSamples []float64
	bitsSamples  []float64
}

type e2eResults struct {
	rows []e2eRow
}

func endToEnd(ctx context.Context, cfg config) (e2eResults, error) {
	topo, err := testenv.NewTopology(ctx, "zfwbench-")
	if err != nil {
		return e2eResults{}, err
	}
	defer topo.Close()
	// Several seconds of connections from one address: give the client
	// every ephemeral port and let it reuse those in TIME_WAIT.
	if err := topo.Client.Do(func() error {
		return errors.Join(
			os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("1024 65535"), 0o644),
			os.WriteFile("/proc/sys/net/ipv4/tcp_tw_reuse", []byte("1"), 0o644))
	}); err != nil {
		return e2eResults{}, fmt.Errorf("client sysctls: %w", err)
	}
	var plain net.Listener
	var tp *tproxy.TCPListener
	if err := topo.Router.Do(func() error {
		lc := net.ListenConfig{}
		lc.SetMultipathTCP(false)
		var err error
		if plain, err = lc.Listen(ctx, "tcp", netip.AddrPortFrom(topo.RouterClientAddr4.Addr(), 0).String()); err != nil {
			return err
		}
		tp, err = tproxy.ListenTCP(ctx, netip.MustParseAddrPort("127.0.0.1:0"))
		return err
	}); err != nil {
		if plain != nil {
			plain.Close()
		}
		return e2eResults{}, fmt.Errorf("listeners in the router: %w", err)
	}
	plainSrv, tpSrv := bench.Serve(plain), bench.Serve(tp)
	defer plainSrv.Close()
	defer tpSrv.Close()

	setups := []e2eSetup{{kind: noInterception}}
	for _, n := range cfg.e2eCounts {
		setups = append(setups, e2eSetup{kind: zfwDataplane, intercepts: n})
	}
	for _, n := range cfg.e2eCounts {
		setups = append(setups, e2eSetup{kind: iptablesTProxy, intercepts: n})
	}
	rows := make([]e2eRow, len(setups))
	for i, s := range setups {
		rows[i].setup = s
	}
	measure := func(round, i int) (conns, bits float64, err error) {
		cfg.log.Infof("end to end: round %d, %s", round+1, setups[i])
		conns, bits, err = measureSetup(ctx, cfg, topo, setups[i], netip.AddrPortFrom(topo.RouterClientAddr4.Addr(), port(plain)), tp)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", setups[i], err)
		}
		rows[i].connsSamples = append(rows[i].connsSamples, conns)
		rows[i].bitsSamples = append(rows[i].bitsSamples, bits)
		return conns, bits, nil
	}
	// Every configuration is measured between two measurements of the
	// limit and set against their mean, and the rounds interleave the
	// configurations: a slow moment of the shared machine weighs on
	// both sides of each ratio.
	ratios := make([]struct{ conns, bits []float64 }, len(setups))
	for round := range cfg.e2eRounds {
		beforeConns, beforeBits, err := measure(round, 0)
		if err != nil {
			return e2eResults{}, err
		}
		for i := 1; i < len(setups); i++ {
			conns, bits, err := measure(round, i)
			if err != nil {
				return e2eResults{}, err
			}
			afterConns, afterBits, err := measure(round, 0)
			if err != nil {
				return e2eResults{}, err
			}
			ratios[i].conns = append(ratios[i].conns, 2*conns/(beforeConns+afterConns))
			ratios[i].bits = append(ratios[i].bits, 2*bits/(beforeBits+afterBits))
			beforeConns, beforeBits = afterConns, afterBits
		}
	}
	if n := plainSrv.Errors() + tpSrv.Errors(); n > 0 {
		return e2eResults{}, fmt.Errorf("the servers failed %d connections", n)
	}
	for i := range rows {
		rows[i].connsRatio, rows[i].bitsRatio = 1, 1
		if i > 0 {
			rows[i].connsRatio = bench.SummarizeRates(ratios[i].conns).Median
			rows[i].bitsRatio = bench.SummarizeRates(ratios[i].bits).Median
		}
		rows[i].conns = bench.SummarizeRates(append([]float64(nil), rows[i].connsSamples...))
		rows[i].bits = bench.SummarizeRates(append([]float64(nil), rows[i].bitsSamples...))
	}
	return e2eResults{rows: rows}, nil
}

func port(ln net.Listener) uint16 {
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// measureSetup installs one configuration in the router, measures
// connections per second and single-stream throughput from the client,
// and removes the configuration.
func measureSetup(ctx context.Context, cfg config, topo *testenv.Topology, s e2eSetup, limitAddr netip.AddrPort, tp *tproxy.TCPListener) (conns, bits float64, err error) {
	target := limitAddr
	var teardown func() error
	// explain says, for an error, what the interception counted.
	var explain func() string
	if s.kind != noInterception {
		// The tested service is the last intercept: for iptables, the
		// last rule of the chain, which every packet walks to the end.
		ics := bench.Intercepts(s.intercepts, 20000)
		ics[len(ics)-1].TProxyPort = tp.Port()
		target = netip.AddrPortFrom(bench.HostAddr(len(ics)-1), 443)
		if s.kind == zfwDataplane {
			var fw *zfw.Firewall
			if fw, err = installZfw(ctx, cfg, topo, ics); err == nil {
				teardown = fw.Close
				explain = func() string { return dataplaneState(fw, topo.Router) }
			}
		} else {
			var t *bench.IPTables
			t, err = bench.InstallIPTables(ctx, topo.Router, ics)
			teardown = func() error { return t.Remove(context.WithoutCancel(ctx)) }
		}
		if err != nil {
			return 0, 0, err
		}
		defer func() {
			if err != nil && explain != nil {
				err = fmt.Errorf("%w (%s)", err, explain())
			}
			if terr := teardown(); terr != nil && err == nil {
				err = terr
			}
		}()
	}
	in := bench.In(topo.Client.Do)
	// A short warm-up: neighbour discovery, the listener's first accepts.
	if _, err := bench.ConnRate(ctx, in, target, 1, cfg.e2eDuration/10); err != nil {
		return 0, 0, err
	}
	if conns, err = bench.ConnRate(ctx, in, target, cfg.e2eClients, cfg.e2eDuration); err != nil {
		return 0, 0, err
	}
	// One stream's rate varies by about a fifth from one stream to the
	// next, however long it runs (its CPU and memory placement); the mean
	// of several shorter streams varies much less.
	for range cfg.e2eStreams {
		b, err := bench.Throughput(ctx, in, target, cfg.streamDuration())
		if err != nil {
			return 0, 0, err
		}
		bits += b / float64(cfg.e2eStreams)
	}
	return conns, bits, nil
}

// installZfw starts a dataplane in the router on its client-facing
// interface with ics registered, and returns what stops it.
func installZfw(ctx context.Context, cfg config, topo *testenv.Topology, ics []intercept.Intercept) (*zfw.Firewall, error) {
	var fw *zfw.Firewall
	err := topo.Router.Do(func() error {
		var err error
		fw, err = zfw.New(zfw.Options{
			PinPath:    benchPin(),
			Interfaces: []zfw.Interface{{Name: topo.RouterClientIf}},
			Logger:     cfg.log,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := fw.Sync(ctx, ics); err != nil {
		return nil, errors.Join(err, fw.Close())
	}
	return fw, nil
}

// dataplaneState describes what the dataplane and the router's TCP stack
// counted, for an error: why a connection may not have been answered.
func dataplaneState(fw *zfw.Firewall, router *testenv.Namespace) string {
	var parts []string
	if st, err := fw.Stats(); err != nil {
		parts = append(parts, "dataplane counters: "+err.Error())
	} else {
		parts = append(parts, fmt.Sprintf("dataplane: %d steered, %d no listener, %d assign failed, %d denied, %d malformed, %d flow cache hits",
			st.Steered, st.NoListener, st.AssignFailed, st.Denied, st.Malformed, st.FlowCacheHits))
	}
	netstat, err := router.ReadProcNet("netstat")
	if err != nil {
		return strings.Join(append(parts, "router netstat: "+err.Error()), "; ")
	}
	counters := tcpExt(netstat)
	var drops []string
	for _, name := range []string{"ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPBacklogDrop", "TCPChallengeACK", "TCPSYNChallenge", "TW", "TWRecycled"} {
		drops = append(drops, fmt.Sprintf("%s %s", name, counters[name]))
	}
	return strings.Join(append(parts, "router TcpExt: "+strings.Join(drops, ", ")), "; ")
}

// tcpExt reads the TcpExt counters of a /proc/net/netstat: a line of
// names, then a line of values.
func tcpExt(netstat []byte) map[string]string {
	out := map[string]string{}
	lines := strings.Split(string(netstat), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) || values[0] != "TcpExt:" {
			continue
		}
		for j := 1; j < len(names); j++ {
			out[names[j]] = values[j]
		}
	}
	return out
}
