package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

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
	setup e2eSetup
	// conns: one per client count of the configuration (cfg.e2eClients).
	conns []connRow
	bits  bench.Spread
	// bitsRatio: median over rounds of the result over the mean of the
	// limit's just before and just after it.
	bitsRatio   float64
	bitsSamples []float64
}

// connRow is the connections/s test at one client count over rounds.
type connRow struct {
	clients int
	rate    bench.Spread
	// ratio: as bitsRatio.
	ratio float64
	// p50, p99: medians over rounds of each round's percentile.
	p50, p99 time.Duration
	// retransPer1000: segments the kernel retransmitted, client and
	// router together, per 1,000 connections, over all rounds.
	retransPer1000 float64

	samples      []float64
	p50s, p99s   []time.Duration
	retrans      int64
	completed    int64
	ratioSamples []float64
}

type e2eResults struct {
	rows []e2eRow
}

// e2eMeasurement is one measurement of one configuration.
type e2eMeasurement struct {
	conns []bench.ConnStats // per client count
	// retrans: segments retransmitted during each client count's run.
	retrans []int64
	bits    float64
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
		for _, c := range cfg.e2eClients {
			rows[i].conns = append(rows[i].conns, connRow{clients: c})
		}
	}
	measure := func(round, i int) (e2eMeasurement, error) {
		cfg.log.Infof("end to end: round %d, %s", round+1, setups[i])
		m, err := measureSetup(ctx, cfg, topo, setups[i], netip.AddrPortFrom(topo.RouterClientAddr4.Addr(), port(plain)), tp)
		if err != nil {
			return m, fmt.Errorf("%s: %w", setups[i], err)
		}
		row := &rows[i]
		for c := range row.conns {
			cr := &row.conns[c]
			cr.samples = append(cr.samples, m.conns[c].Rate)
			cr.p50s = append(cr.p50s, m.conns[c].P50)
			cr.p99s = append(cr.p99s, m.conns[c].P99)
			cr.retrans += m.retrans[c]
			cr.completed += int64(m.conns[c].Connections)
		}
		row.bitsSamples = append(row.bitsSamples, m.bits)
		return m, nil
	}
	// Every configuration is measured between two measurements of the
	// limit and set against their mean, and the rounds interleave the
	// configurations: a slow moment of the shared machine weighs on
	// both sides of each ratio.
	bitsRatios := make([][]float64, len(setups))
	for round := range cfg.e2eRounds {
		before, err := measure(round, 0)
		if err != nil {
			return e2eResults{}, err
		}
		for i := 1; i < len(setups); i++ {
			m, err := measure(round, i)
			if err != nil {
				return e2eResults{}, err
			}
			after, err := measure(round, 0)
			if err != nil {
				return e2eResults{}, err
			}
			for c := range rows[i].conns {
				cr := &rows[i].conns[c]
				cr.ratioSamples = append(cr.ratioSamples, 2*m.conns[c].Rate/(before.conns[c].Rate+after.conns[c].Rate))
			}
			bitsRatios[i] = append(bitsRatios[i], 2*m.bits/(before.bits+after.bits))
			before = after
		}
	}
	if n := plainSrv.Errors() + tpSrv.Errors(); n > 0 {
		return e2eResults{}, fmt.Errorf("the servers failed %d connections", n)
	}
	for i := range rows {
		row := &rows[i]
		row.bitsRatio = 1
		if i > 0 {
			row.bitsRatio = bench.SummarizeRates(bitsRatios[i]).Median
		}
		row.bits = bench.SummarizeRates(append([]float64(nil), row.bitsSamples...))
		for c := range row.conns {
			cr := &row.conns[c]
			cr.ratio = 1
			if i > 0 {
				cr.ratio = bench.SummarizeRates(cr.ratioSamples).Median
			}
			cr.rate = bench.SummarizeRates(append([]float64(nil), cr.samples...))
			cr.p50, cr.p99 = bench.Summarize(cr.p50s).Median, bench.Summarize(cr.p99s).Median
			if cr.completed > 0 {
				cr.retransPer1000 = 1000 * float64(cr.retrans) / float64(cr.completed)
			}
		}
	}
	return e2eResults{rows: rows}, nil
}

func port(ln net.Listener) uint16 {
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// measureSetup installs one configuration in the router, measures
// connections per second at each client count and single-stream
// throughput from the client, and removes the configuration.
func measureSetup(ctx context.Context, cfg config, topo *testenv.Topology, s e2eSetup, limitAddr netip.AddrPort, tp *tproxy.TCPListener) (m e2eMeasurement, err error) {
	target := limitAddr
	var teardown func() error
	// explain says, for an error, what the interception counted.
	var explain func() string
	if s.kind != noInterception {
		// The tested service is the last intercept: for iptables, the
		// last rule of the chain, which every packet walks to the end.
		// Every service shares the one TPROXY port, as OpenZiti's
		// tunnelers do.
		ics := bench.Intercepts(s.intercepts, tp.Port(), 1)
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
			return m, err
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
		return m, err
	}
	for _, clients := range cfg.e2eClients {
		before, err := retransmitted(topo)
		if err != nil {
			return m, err
		}
		st, err := bench.ConnRate(ctx, in, target, clients, cfg.e2eDuration)
		if err != nil {
			return m, fmt.Errorf("%d clients: %w", clients, err)
		}
		after, err := retransmitted(topo)
		if err != nil {
			return m, err
		}
		m.conns = append(m.conns, st)
		m.retrans = append(m.retrans, after-before)
	}
	// One stream's rate varies by about a fifth from one stream to the
	// next, however long it runs (its CPU and memory placement); the mean
	// of several shorter streams varies much less.
	for range cfg.e2eStreams {
		b, err := bench.Throughput(ctx, in, target, cfg.streamDuration())
		if err != nil {
			return m, err
		}
		m.bits += b / float64(cfg.e2eStreams)
	}
	return m, nil
}

// retransmitted is the number of TCP segments the client's and the
// router's stacks have retransmitted (Tcp RetransSegs of /proc/net/snmp).
func retransmitted(topo *testenv.Topology) (int64, error) {
	var total int64
	for _, ns := range []*testenv.Namespace{topo.Client, topo.Router} {
		snmp, err := ns.ReadProcNet("snmp")
		if err != nil {
			return 0, fmt.Errorf("TCP counters: %w", err)
		}
		n, err := strconv.ParseInt(procCounters(snmp, "Tcp:")["RetransSegs"], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("TCP counters: RetransSegs: %w", err)
		}
		total += n
	}
	return total, nil
}

// installZfw starts a dataplane in the router on its client-facing
// interface (default interface options) with ics registered, and
// returns what stops it.
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
	// One by one, as a tunneler registers services when they arrive.
	if _, err := bench.Each(ctx, ics, fw.Register); err != nil {
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
	counters := procCounters(netstat, "TcpExt:")
	var drops []string
	for _, name := range []string{"ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPBacklogDrop", "TCPChallengeACK", "TCPSYNChallenge", "TW", "TWRecycled"} {
		drops = append(drops, fmt.Sprintf("%s %s", name, counters[name]))
	}
	return strings.Join(append(parts, "router TcpExt: "+strings.Join(drops, ", ")), "; ")
}

// procCounters reads one group of counters (group "TcpExt:" of
// /proc/net/netstat, "Tcp:" of /proc/net/snmp): a line of names, then a
// line of values, both starting with group.
func procCounters(file []byte, group string) map[string]string {
	out := map[string]string{}
	lines := strings.Split(string(file), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != group || len(values) != len(names) || values[0] != group {
			continue
		}
		for j := 1; j < len(names); j++ {
			out[names[j]] = values[j]
		}
	}
	return out
}
