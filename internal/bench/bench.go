// Package bench measures the dataplane: ns per packet through
// BPF_PROG_TEST_RUN for each path next to an empty TC program measured in
// the same run, and control-plane registration times. `make bench` runs
// it and writes BENCHMARKS.md from one run.
package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/packet"
)

// Timing is the distribution of one measurement over rounds.
type Timing struct {
	Median, Min, Max time.Duration
}

func summarize(samples []time.Duration) Timing {
	slices.Sort(samples)
	return Timing{Median: samples[len(samples)/2], Min: samples[0], Max: samples[len(samples)-1]}
}

// EmptyProgram is the floor: a TC program that returns TC_ACT_OK.
func EmptyProgram() (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "zfw_empty",
		Type:    ebpf.SchedCLS,
		License: "Dual BSD/GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
}

// Repeated measures one packet run repeat times in the kernel (the
// established-flow path: after the first run the flow's verdict is
// cached), over rounds.
func Repeated(prog *ebpf.Program, frame []byte, repeat, rounds int) (Timing, error) {
	var samples []time.Duration
	for range rounds {
		_, d, err := prog.Benchmark(frame, repeat, nil)
		if err != nil {
			return Timing{}, err
		}
		samples = append(samples, d)
	}
	return summarize(samples), nil
}

// Fresh measures one packet run once per call, perRound times, so that
// every run sees the packet as built (a program that rewrites the packet
// would see its own output under Repeated). Compare with Distinct's
// floor: both pay the per-call overhead.
func Fresh(prog *ebpf.Program, frame []byte, perRound, rounds int) (Timing, error) {
	var samples []time.Duration
	for range rounds {
		var total time.Duration
		for range perRound {
			_, d, err := prog.Benchmark(frame, 1, nil)
			if err != nil {
				return Timing{}, err
			}
			total += d
		}
		samples = append(samples, total/time.Duration(perRound))
	}
	return summarize(samples), nil
}

// Distinct measures new flows: each run gets a frame with a source port
// not seen before, so every packet misses the verdict cache and goes
// through the policy lookup. It reports the kernel's per-run time
// averaged over a round, over rounds.
func Distinct(prog *ebpf.Program, spec packet.Spec, perRound, rounds int) (Timing, error) {
	var samples []time.Duration
	port := uint32(1024)
	for range rounds {
		var total time.Duration
		for range perRound {
			spec.SrcPort = uint16(port)
			port++
			if port > 65535 {
				port = 1024
				spec.Src = spec.Src.Next()
			}
			_, d, err := prog.Benchmark(packet.Build(spec), 1, nil)
			if err != nil {
				return Timing{}, err
			}
			total += d
		}
		samples = append(samples, total/time.Duration(perRound))
	}
	return summarize(samples), nil
}

// AttachedProgram opens the program that the dataplane pinned at pin has
// attached to ifname in direction ("ingress" or "egress"), through its
// pinned TCX link.
func AttachedProgram(pin, ifname, direction string) (*ebpf.Program, error) {
	l, err := link.LoadPinnedLink(filepath.Join(pin, "links", ifname+"-"+direction), nil)
	if err != nil {
		return nil, fmt.Errorf("load pinned link of %s: %w", ifname, err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return nil, fmt.Errorf("link info: %w", err)
	}
	prog, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		return nil, fmt.Errorf("open program %d: %w", info.Program, err)
	}
	return prog, nil
}

// Intercepts returns n intercepts with a realistic mix: mostly /32 hosts
// with one port, every 50th a /24 with a port range, every 200th a
// second port range that overlaps a neighbour's. Service i's target
// address is 10.x.y.z with x.y.z = i+1 spread over the space.
func Intercepts(n int, tproxyPort uint16) []intercept.Intercept {
	out := make([]intercept.Intercept, 0, n)
	for i := range n {
		ic := intercept.Intercept{
			ServiceID:  fmt.Sprintf("svc%06d", i),
			Protocols:  []intercept.Protocol{intercept.TCP, intercept.UDP},
			Addresses:  []netip.Prefix{netip.PrefixFrom(HostAddr(i), 32)},
			Ports:      []intercept.PortRange{{Low: 443, High: 443}},
			TProxyPort: tproxyPort + uint16(i%2000),
		}
		if i%50 == 49 {
			a := HostAddr(i).As4()
			a[2] ^= 0x80 // a /24 in another part of the space
			ic.Addresses = append(ic.Addresses, netip.PrefixFrom(netip.AddrFrom4(a), 24).Masked())
			ic.Ports = append(ic.Ports, intercept.PortRange{Low: 8000, High: 8099})
		}
		if i%200 == 199 {
			ic.Ports = append(ic.Ports, intercept.PortRange{Low: 440, High: 450})
		}
		out = append(out, ic)
	}
	return out
}

// HostAddr is the /32 of intercept i.
func HostAddr(i int) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 10<<24|uint32(i+1))
	return netip.AddrFrom4(b)
}

// Register times registering ics one by one, as a tunneler does.
func Register(ctx context.Context, reg func(context.Context, intercept.Intercept) error, ics []intercept.Intercept) (time.Duration, error) {
	start := time.Now()
	for _, ic := range ics {
		if err := reg(ctx, ic); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
