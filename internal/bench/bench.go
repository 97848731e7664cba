// Package bench measures the zfw dataplane for `make bench`: nanoseconds
// per packet through BPF_PROG_TEST_RUN next to an empty TC program
// measured the same way, end-to-end connection rates and throughput
// between network namespaces, and control-plane timings and memory.
// The command in cmd/benchmarks runs it and writes BENCHMARKS.md from
// one run.
package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/zfw-go/zfw/intercept"
)

// Timing is the distribution of one measurement over rounds.
type Timing struct {
	Median, Min, Max time.Duration
}

// Summarize returns the median, minimum and maximum of samples (which it
// sorts). It returns the zero Timing for no samples.
func Summarize(samples []time.Duration) Timing {
	if len(samples) == 0 {
		return Timing{}
	}
	slices.Sort(samples)
	return Timing{Median: samples[len(samples)/2], Min: samples[0], Max: samples[len(samples)-1]}
}

// Spread is the distribution of a rate (connections per second, bits per
// second) over rounds.
type Spread struct {
	Median, Min, Max float64
}

// SummarizeRates returns the median, minimum and maximum of samples
// (which it sorts).
func SummarizeRates(samples []float64) Spread {
	if len(samples) == 0 {
		return Spread{}
	}
	slices.Sort(samples)
	return Spread{Median: samples[len(samples)/2], Min: samples[0], Max: samples[len(samples)-1]}
}

// Intercepts returns n dual-stack intercepts in a realistic mix. Every
// intercept covers TCP and UDP on one IPv4 host (HostAddr) and one IPv6
// host (HostAddr6), port 443. Every 50th also covers an IPv4 /24 and an
// IPv6 /120 elsewhere in the space, on ports 8000-8099; with more than
// 32,768 intercepts those networks overlap other intercepts' hosts. Every
// 200th adds the range 440-450, which overlaps its own port 443.
// Intercept i listens on tproxyPort + i%ports: ports 1 is every service
// on one TPROXY port (as OpenZiti's tunnelers share theirs), ports n one
// port each.
func Intercepts(n int, tproxyPort uint16, ports int) []intercept.Intercept {
	out := make([]intercept.Intercept, 0, n)
	for i := range n {
		ic := intercept.Intercept{
			ServiceID:  fmt.Sprintf("svc%06d", i),
			Protocols:  []intercept.Protocol{intercept.TCP, intercept.UDP},
			Addresses:  []netip.Prefix{netip.PrefixFrom(HostAddr(i), 32), netip.PrefixFrom(HostAddr6(i), 128)},
			Ports:      []intercept.PortRange{{Low: 443, High: 443}},
			TProxyPort: tproxyPort + uint16(i%ports),
		}
		if i%50 == 49 {
			a4 := HostAddr(i).As4()
			a4[2] ^= 0x80
			a6 := HostAddr6(i).As16()
			a6[14] ^= 0x80
			ic.Addresses = append(ic.Addresses,
				netip.PrefixFrom(netip.AddrFrom4(a4), 24).Masked(),
				netip.PrefixFrom(netip.AddrFrom16(a6), 120).Masked())
			ic.Ports = append(ic.Ports, intercept.PortRange{Low: 8000, High: 8099})
		}
		if i%200 == 199 {
			ic.Ports = append(ic.Ports, intercept.PortRange{Low: 440, High: 450})
		}
		out = append(out, ic)
	}
	return out
}

// RuleCount is the number of rules ics compile to: one per protocol,
// address and port range of each intercept.
func RuleCount(ics []intercept.Intercept) int {
	n := 0
	for _, ic := range ics {
		n += len(ic.Protocols) * len(ic.Addresses) * len(ic.Ports)
	}
	return n
}

// PrefixKeys is the number of prefix keys of one family (IPv4 if v4)
// that ics need in the dataplane's prefix map: one per protocol and
// distinct destination prefix.
func PrefixKeys(ics []intercept.Intercept, v4 bool) int {
	type key struct {
		proto intercept.Protocol
		p     netip.Prefix
	}
	seen := make(map[key]struct{})
	for _, ic := range ics {
		for _, p := range ic.Addresses {
			if p.Addr().Is4() != v4 {
				continue
			}
			for _, proto := range ic.Protocols {
				seen[key{proto, p}] = struct{}{}
			}
		}
	}
	return len(seen)
}

// HostAddr is the IPv4 host of intercept i: 10.x.y.z with x.y.z = i+1.
func HostAddr(i int) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 10<<24|uint32(i+1))
	return netip.AddrFrom4(b)
}

// HostAddr6 is the IPv6 host of intercept i: fd00:7a66::/96 plus i+1.
func HostAddr6(i int) netip.Addr {
	b := [16]byte{0xfd, 0x00, 0x7a, 0x66}
	binary.BigEndian.PutUint32(b[12:], uint32(i+1))
	return netip.AddrFrom16(b)
}

// Each times fn applied to every intercept of ics in order, as a
// tunneler registers or unregisters services one by one.
func Each(ctx context.Context, ics []intercept.Intercept, fn func(context.Context, intercept.Intercept) error) (time.Duration, error) {
	start := time.Now()
	for _, ic := range ics {
		if err := fn(ctx, ic); err != nil {
			return 0, fmt.Errorf("service %s: %w", ic.ServiceID, err)
		}
	}
	return time.Since(start), nil
}
