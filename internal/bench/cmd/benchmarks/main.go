// Command benchmarks runs the dataplane benchmarks once and writes
// BENCHMARKS.md. It needs root; it creates its own pin folder and
// attaches nothing.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/bench"
	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

func main() {
	out := flag.String("o", "BENCHMARKS.md", "file to write")
	rounds := flag.Int("rounds", 7, "rounds per measurement")
	flag.Parse()
	if os.Geteuid() != 0 {
		log.Fatal("benchmarks: needs root (BPF test runs, a network namespace)")
	}
	// Everything runs in a namespace of its own: the dataplane attaches
	// to that namespace's lo and installs its routing there.
	ns, err := testenv.NewNamespace(fmt.Sprintf("zfwbench-%d", os.Getpid()))
	if err != nil {
		log.Fatal(err)
	}
	err = ns.Do(func() error { return run(*out, *rounds) })
	if cerr := ns.Close(); cerr != nil {
		log.Print(cerr)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// Map sizes for the largest run: each intercept is TCP and UDP.
const (
	benchMaxRules    = 600000
	benchMaxPrefixes = 300000
)

type row struct {
	path   string
	counts map[int]bench.Timing
}

func run(out string, rounds int) error {
	ctx := context.Background()
	empty, err := bench.EmptyProgram()
	if err != nil {
		return fmt.Errorf("load empty program: %w", err)
	}
	defer empty.Close()

	frameEst := packet.Build(packet.Spec{Src: netip.MustParseAddr("192.168.1.2"), Dst: bench.HostAddr(0), Proto: packet.TCP, SrcPort: 40000, DstPort: 443, TCPFlags: packet.ACK})
	newSpec := packet.Spec{Src: netip.MustParseAddr("192.168.1.2"), Dst: bench.HostAddr(0), Proto: packet.TCP, DstPort: 443}
	passSpec := packet.Spec{Src: netip.MustParseAddr("192.168.1.2"), Dst: netip.MustParseAddr("172.31.0.1"), Proto: packet.UDP, DstPort: 5000}

	const repeat = 20000
	const perRound = 3000
	floorRep, err := bench.Repeated(empty, frameEst, repeat, rounds)
	if err != nil {
		return err
	}
	floorOne, err := bench.Distinct(empty, newSpec, perRound, rounds)
	if err != nil {
		return err
	}

	counts := []int{1, 1000, 100000}
	est := row{"established flow (cache hit), TCP ACK", map[int]bench.Timing{}}
	nflow := row{"new flow to a TPROXY intercept, TCP SYN", map[int]bench.Timing{}}
	npass := row{"new flow, no rule (passed), UDP", map[int]bench.Timing{}}
	var reg10k, sync10k time.Duration
	for _, n := range counts {
		pin := fmt.Sprintf("/sys/fs/bpf/zfw-bench-%d", rand.Uint32())
		fw, err := zfw.New(zfw.Options{PinPath: pin, Interfaces: []zfw.Interface{{Name: "lo"}}, MaxRules: benchMaxRules, MaxPrefixes: benchMaxPrefixes})
		if err != nil {
			return err
		}
		if err := fw.Sync(ctx, bench.Intercepts(n, 20000)); err != nil {
			fw.Close()
			return fmt.Errorf("register %d intercepts: %w", n, err)
		}
		prog, err := bench.AttachedProgram(pin, "lo", "ingress")
		if err != nil {
			fw.Close()
			return err
		}
		if est.counts[n], err = bench.Repeated(prog, frameEst, repeat, rounds); err != nil {
			fw.Close()
			return err
		}
		if nflow.counts[n], err = bench.Distinct(prog, newSpec, perRound, rounds); err != nil {
			fw.Close()
			return err
		}
		if npass.counts[n], err = bench.Distinct(prog, passSpec, perRound, rounds); err != nil {
			fw.Close()
			return err
		}
		prog.Close()
		fw.Close()
	}

	// A reply to a session opened outwards, on a default-deny interface:
	// the egress program records the session, the reply repeats.
	replyTCP, replyUDP, err := replies(rounds, repeat)
	if err != nil {
		return err
	}
	inbound, masq, err := inboundAndMasquerade(ctx, rounds, repeat)
	if err != nil {
		return err
	}
	protEst, protNew, err := protected(ctx, rounds, repeat, perRound)
	if err != nil {
		return err
	}
	evRate, err := eventRate()
	if err != nil {
		return err
	}

	// Control plane: 10,000 intercepts one by one, and in one Sync.
	for _, viaSync := range []bool{false, true} {
		fw, err := zfw.New(zfw.Options{PinPath: fmt.Sprintf("/sys/fs/bpf/zfw-bench-%d", rand.Uint32())})
		if err != nil {
			return err
		}
		ics := bench.Intercepts(10000, 20000)
		start := time.Now()
		if viaSync {
			err = fw.Sync(ctx, ics)
			sync10k = time.Since(start)
		} else {
			reg10k, err = bench.Register(ctx, fw.Register, ics)
		}
		fw.Close()
		if err != nil {
			return err
		}
	}

	var b bytes.Buffer
	header(&b)
	fmt.Fprintf(&b, "## Per packet (BPF_PROG_TEST_RUN)\n\n")
	fmt.Fprintf(&b, "Median of %d rounds (min–max in brackets). Established: one packet repeated %d times in the kernel. New flow: %d distinct flows per round, one run each (each misses the verdict cache). Each is set next to the empty TC program measured the same way in the same run.\n\n", rounds, repeat, perRound)
	fmt.Fprintf(&b, "| path | floor (empty program) |")
	for _, n := range counts {
		fmt.Fprintf(&b, " %d intercepts |", n)
	}
	fmt.Fprintf(&b, "\n|---|---|")
	for range counts {
		fmt.Fprintf(&b, "---|")
	}
	fmt.Fprintln(&b)
	for _, r := range []struct {
		row   row
		floor bench.Timing
	}{{est, floorRep}, {nflow, floorOne}, {npass, floorOne}} {
		fmt.Fprintf(&b, "| %s | %s |", r.row.path, ns(r.floor))
		for _, n := range counts {
			t := r.row.counts[n]
			fmt.Fprintf(&b, " %s (%.1fx) |", ns(t), float64(t.Median)/float64(r.floor.Median))
		}
		fmt.Fprintln(&b)
	}
	fmt.Fprintf(&b, "| reply to a session opened outwards (default-deny interface), TCP ACK | %s | %s (%.1fx) | | |\n", ns(floorRep), ns(replyTCP), float64(replyTCP.Median)/float64(floorRep.Median))
	fmt.Fprintf(&b, "| reply to a session opened outwards (default-deny interface), UDP | %s | %s (%.1fx) | | |\n", ns(floorRep), ns(replyUDP), float64(replyUDP.Median)/float64(floorRep.Median))
	fmt.Fprintf(&b, "| established inbound session (fast path, default-deny interface), TCP ACK | %s | %s (%.1fx) | | |\n", ns(floorRep), ns(inbound), float64(inbound.Median)/float64(floorRep.Median))
	fmt.Fprintf(&b, "| masqueraded packet (egress, existing mapping, one run per call), UDP | %s | %s (%.1fx) | | |\n", ns(floorOne), ns(masq), float64(masq.Median)/float64(floorOne.Median))
	fmt.Fprintf(&b, "| established flow with DDoS and OT filtering on, TCP ACK | %s | %s (%.1fx) | | |\n", ns(floorRep), ns(protEst), float64(protEst.Median)/float64(floorRep.Median))
	fmt.Fprintf(&b, "| new flow with DDoS and OT filtering on, TCP SYN to an intercept | %s | %s (%.1fx) | | |\n", ns(floorOne), ns(protNew), float64(protNew.Median)/float64(floorOne.Median))
	fmt.Fprintf(&b, "\nEvents: %.0f events per second delivered to a Go reader through `fw.Events` (drops from a verbose interface, the kernel rate limit set above the offered rate).\n", evRate)
	fmt.Fprintf(&b, "\nEach intercept covers TCP and UDP; the mix is mostly /32 hosts with one port, every 50th adds a /24 with a port range, every 200th an overlapping second range (`internal/bench.Intercepts`).\n\n")
	fmt.Fprintf(&b, "## Control plane\n\n| operation | time |\n|---|---|\n")
	fmt.Fprintf(&b, "| register 10,000 intercepts one by one (`Register`) | %s |\n", reg10k.Round(time.Millisecond))
	fmt.Fprintf(&b, "| register 10,000 intercepts in one `Sync` | %s |\n", sync10k.Round(time.Millisecond))
	fmt.Fprintf(&b, "\n## Why the numbers look like this\n\n")
	fmt.Fprintf(&b, "- An established packet costs one parse and one LRU lookup in `matched_map`; the rule tables are not touched, so its cost does not depend on the number of intercepts.\n")
	fmt.Fprintf(&b, "- A new flow costs one hash lookup per prefix length in use for its family and protocol (`prefix_len_map`), not per rule and not per possible length; the matching prefix's rules sit in consecutive `range_map` array slots.\n")
	fmt.Fprintf(&b, "- Only steered TCP connections are written to `matched_map`: on this machine an LRU insert is most of a new flow's cost (the TPROXY SYN row pays it; the passed UDP row does not), and recomputing a verdict from the rule tables costs little more than a cache lookup.\n")
	fmt.Fprintf(&b, "- A reply on a default-deny interface costs one lookup in `tcp_map`/`udp_map` (and the session's state update) before any rule.\n")
	fmt.Fprintf(&b, "- The TPROXY new-flow path includes the listener socket lookup (there is no listener here, so the packet is dropped after the lookup; `bpf_sk_assign` is refused under test runs anyway).\n")
	return os.WriteFile(out, b.Bytes(), 0o644)
}

func ns(t bench.Timing) string {
	return fmt.Sprintf("%d ns [%d–%d]", t.Median.Nanoseconds(), t.Min.Nanoseconds(), t.Max.Nanoseconds())
}

func header(b *bytes.Buffer) {
	var uts unix.Utsname
	unix.Uname(&uts)
	commit := "unknown"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	cpu := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	fmt.Fprintf(b, "# Benchmarks\n\nWritten by `make bench` (internal/bench/cmd/benchmarks) from one run; do not edit by hand.\n\n")
	fmt.Fprintf(b, "- date: %s\n- commit: %s\n- kernel: %s\n- cpu: %s (%d cores)\n- go: %s\n\n",
		time.Now().UTC().Format(time.RFC3339), commit, unix.ByteSliceToString(uts.Release[:]), cpu, runtime.NumCPU(), runtime.Version())
}

// replies measures the ingress cost of replies to sessions the host
// opened: one flow per protocol, recorded by a run of the egress program.
func replies(rounds, repeat int) (tcp, udp bench.Timing, err error) {
	pin := fmt.Sprintf("/sys/fs/bpf/zfw-bench-%d", rand.Uint32())
	fw, err := zfw.New(zfw.Options{PinPath: pin, Interfaces: []zfw.Interface{{Name: "lo", InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true}}}})
	if err != nil {
		return tcp, udp, err
	}
	defer fw.Close()
	in, err := bench.AttachedProgram(pin, "lo", "ingress")
	if err != nil {
		return tcp, udp, err
	}
	defer in.Close()
	out, err := bench.AttachedProgram(pin, "lo", "egress")
	if err != nil {
		return tcp, udp, err
	}
	defer out.Close()
	host, server := netip.MustParseAddr("10.50.0.1"), netip.MustParseAddr("10.60.0.2")
	for _, proto := range []uint8{packet.TCP, packet.UDP} {
		o := packet.Spec{Src: host, Dst: server, Proto: proto, SrcPort: 40000, DstPort: 443, TCPFlags: packet.SYN}
		i := packet.Spec{Src: server, Dst: host, Proto: proto, SrcPort: 443, DstPort: 40000, TCPFlags: packet.SYN | packet.ACK}
		if _, _, err := out.Benchmark(packet.Build(o), 1, nil); err != nil {
			return tcp, udp, err
		}
		if proto == packet.TCP {
			// Complete the handshake so the repeated packet is plain data.
			if _, _, err := in.Benchmark(packet.Build(i), 1, nil); err != nil {
				return tcp, udp, err
			}
			o.TCPFlags = packet.ACK
			if _, _, err := out.Benchmark(packet.Build(o), 1, nil); err != nil {
				return tcp, udp, err
			}
			i.TCPFlags = packet.ACK
		}
		t, err := bench.Repeated(in, packet.Build(i), repeat, rounds)
		if err != nil {
			return tcp, udp, err
		}
		if proto == packet.TCP {
			tcp = t
		} else {
			udp = t
		}
	}
	return tcp, udp, nil
}

// inboundAndMasquerade measures an established inbound session's packet
// (admitted by a rule, then on the fast path) and a masqueraded packet
// of a flow whose mapping exists.
func inboundAndMasquerade(ctx context.Context, rounds, repeat int) (inbound, masq bench.Timing, err error) {
	pin := fmt.Sprintf("/sys/fs/bpf/zfw-bench-%d", rand.Uint32())
	fw, err := zfw.New(zfw.Options{PinPath: pin, Interfaces: []zfw.Interface{{Name: "lo", InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true, Masquerade: true}}}})
	if err != nil {
		return inbound, masq, err
	}
	defer fw.Close()
	host := netip.MustParseAddr("10.50.0.1")
	if _, err := fw.Rules().Add(ctx, zfw.Rule{Action: zfw.Pass, Protocol: intercept.TCP, Destination: netip.PrefixFrom(host, 32), Ports: intercept.PortRange{Low: 80, High: 80}}); err != nil {
		return inbound, masq, err
	}
	in, err := bench.AttachedProgram(pin, "lo", "ingress")
	if err != nil {
		return inbound, masq, err
	}
	defer in.Close()
	out, err := bench.AttachedProgram(pin, "lo", "egress")
	if err != nil {
		return inbound, masq, err
	}
	defer out.Close()
	client := netip.MustParseAddr("10.60.0.2")
	syn := packet.Spec{Src: client, Dst: host, Proto: packet.TCP, SrcPort: 41000, DstPort: 80, TCPFlags: packet.SYN}
	if _, _, err := in.Benchmark(packet.Build(syn), 1, nil); err != nil {
		return inbound, masq, err
	}
	syn.TCPFlags = packet.ACK
	if inbound, err = bench.Repeated(in, packet.Build(syn), repeat, rounds); err != nil {
		return inbound, masq, err
	}
	flow := packet.Build(packet.Spec{Src: netip.MustParseAddr("10.1.1.5"), Dst: client, Proto: packet.UDP, SrcPort: 5000, DstPort: 53})
	masq, err = bench.Fresh(out, flow, 3000, rounds)
	return inbound, masq, err
}

// protected measures the established and new-flow paths of an interface
// with SYN-flood protection and OT filtering on.
func protected(ctx context.Context, rounds, repeat, perRound int) (est, nflow bench.Timing, err error) {
	pin := fmt.Sprintf("/sys/fs/bpf/zfw-bench-%d", rand.Uint32())
	fw, err := zfw.New(zfw.Options{PinPath: pin,
		Interfaces: []zfw.Interface{{Name: "lo", InterfaceSettings: zfw.InterfaceSettings{DDoSProtection: true, OTFiltering: true}}},
		// New flows here come from one source: keep it under the ban.
		SYNFlood: zfw.SYNFlood{SYNsPerSecond: 1 << 30}})
	if err != nil {
		return est, nflow, err
	}
	defer fw.Close()
	if err := fw.Sync(ctx, bench.Intercepts(1000, 20000)); err != nil {
		return est, nflow, err
	}
	prog, err := bench.AttachedProgram(pin, "lo", "ingress")
	if err != nil {
		return est, nflow, err
	}
	defer prog.Close()
	src := netip.MustParseAddr("192.168.1.2")
	ack := packet.Build(packet.Spec{Src: src, Dst: bench.HostAddr(0), Proto: packet.TCP, SrcPort: 40000, DstPort: 443, TCPFlags: packet.ACK})
	if est, err = bench.Repeated(prog, ack, repeat, rounds); err != nil {
		return est, nflow, err
	}
	nflow, err = bench.Distinct(prog, packet.Spec{Src: src, Dst: bench.HostAddr(0), Proto: packet.TCP, DstPort: 443}, perRound, rounds)
	return est, nflow, err
}

// eventRate offers drop events as fast as test runs make them for a
// second and counts what a Go reader receives.
func eventRate() (float64, error) {
	pin := fmt.Sprintf("/sys/fs/bpf/zfw-bench-%d", rand.Uint32())
	fw, err := zfw.New(zfw.Options{PinPath: pin, EventsPerSecond: 1 << 30,
		Interfaces: []zfw.Interface{{Name: "lo", InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true, Verbose: true}}}})
	if err != nil {
		return 0, err
	}
	defer fw.Close()
	prog, err := bench.AttachedProgram(pin, "lo", "ingress")
	if err != nil {
		return 0, err
	}
	defer prog.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := fw.Events(ctx)
	if err != nil {
		return 0, err
	}
	got := make(chan int)
	go func() {
		n := 0
		for range events {
			n++
		}
		got <- n
	}()
	frame := packet.Build(packet.Spec{Src: netip.MustParseAddr("192.168.1.2"), Dst: netip.MustParseAddr("10.9.9.9"), Proto: packet.UDP, SrcPort: 1, DstPort: 9})
	start := time.Now()
	for time.Since(start) < time.Second {
		if _, _, err := prog.Benchmark(frame, 64, nil); err != nil {
			return 0, err
		}
	}
	time.Sleep(200 * time.Millisecond) // let the reader drain
	cancel()
	n := <-got
	return float64(n) / time.Since(start).Seconds(), nil
}
