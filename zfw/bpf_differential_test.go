package zfw

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/zfw/conntrack"
)

// universe draws addresses and prefixes from small ranges so that random
// rules overlap and random packets hit them.
type universe struct {
	rng   *rand.Rand
	other string
}

func (u universe) addr4(base [4]byte, spread int) netip.Addr {
	b := base
	b[2] += byte(u.rng.IntN(spread))
	b[3] = byte(u.rng.IntN(256))
	return netip.AddrFrom4(b)
}

func (u universe) addr6(base [16]byte, spread int) netip.Addr {
	b := base
	b[6] = byte(u.rng.IntN(spread))
	b[15] = byte(u.rng.IntN(256))
	b[14] = byte(u.rng.IntN(2))
	return netip.AddrFrom16(b)
}

var (
	dstBase4 = [4]byte{10, 20, 0, 0}
	srcBase4 = [4]byte{192, 168, 0, 0}
	dstBase6 = [16]byte{0xfd, 0, 0, 0x20}
	srcBase6 = [16]byte{0xfd, 0, 0, 0x30}
)

func (u universe) pick(lens []int) int { return lens[u.rng.IntN(len(lens))] }

func (u universe) rule() Rule {
	v6 := u.rng.IntN(3) == 0
	var dst, src netip.Addr
	var dlen, slen int
	if v6 {
		dst, src = u.addr6(dstBase6, 4), u.addr6(srcBase6, 4)
		dlen, slen = u.pick([]int{0, 32, 48, 52, 56, 64, 120, 127, 128}), u.pick([]int{48, 56, 120, 128})
	} else {
		dst, src = u.addr4(dstBase4, 4), u.addr4(srcBase4, 4)
		dlen, slen = u.pick([]int{0, 8, 16, 22, 23, 24, 28, 31, 32}), u.pick([]int{16, 22, 24, 30, 32})
	}
	r := Rule{
		Protocol:    intercept.TCP,
		Destination: netip.PrefixFrom(dst, dlen).Masked(),
	}
	if u.rng.IntN(2) == 0 {
		r.Protocol = intercept.UDP
	}
	if u.rng.IntN(3) == 0 {
		r.Source = netip.PrefixFrom(src, slen).Masked()
	}
	if u.rng.IntN(20) == 0 {
		r.Ports = intercept.PortRange{Low: 1, High: 65535}
	} else {
		low := uint16(1 + u.rng.IntN(200))
		r.Ports = intercept.PortRange{Low: low, High: low + uint16(u.rng.IntN(40))}
	}
	switch n := u.rng.IntN(10); {
	case n < 3:
		r.Action = Pass
	case n < 5:
		r.Action = Deny
	default:
		r.Action = TProxy
		r.TProxyPort = uint16(7000 + u.rng.IntN(50))
	}
	if u.rng.IntN(7) == 0 {
		r.Interfaces = []string{[]string{"lo", u.other}[u.rng.IntN(2)]}
	}
	return r
}

func (u universe) packet(ifindexes []int) (packet.Spec, int) {
	s := packet.Spec{Proto: packet.TCP, SrcPort: uint16(1024 + u.rng.IntN(60000))}
	if u.rng.IntN(2) == 0 {
		s.Proto = packet.UDP
	}
	if u.rng.IntN(3) == 0 {
		s.Dst, s.Src = u.addr6(dstBase6, 5), u.addr6(srcBase6, 5)
	} else {
		s.Dst, s.Src = u.addr4(dstBase4, 5), u.addr4(srcBase4, 5)
	}
	if u.rng.IntN(10) == 0 {
		s.DstPort = uint16(1 + u.rng.IntN(65535))
	} else {
		s.DstPort = uint16(1 + u.rng.IntN(250))
	}
	if u.rng.IntN(25) == 0 {
		s.FragOffset = uint16(u.rng.IntN(2) * 100)
		s.MoreFragments = s.FragOffset == 0 || u.rng.IntN(2) == 0
	}
	return s, ifindexes[u.rng.IntN(len(ifindexes))]
}

// TestProgramMatchesReferenceModel is the differential test: seeded
// random rule sets and random packets; the BPF program's decision must
// equal the reference model's on every packet.
func TestProgramMatchesReferenceModel(t *testing.T) {
	h := newHarness(t)
	for seed := uint64(1); seed <= 5; seed++ {
		matchesModel(t, h, seed, 2500)
	}
}

// FuzzProgramMatchesReferenceModel is the differential test as a fuzz
// target: each input seeds a rule set, the interfaces' settings and a
// run of packets.
func FuzzProgramMatchesReferenceModel(f *testing.F) {
	for seed := uint64(1); seed <= 8; seed++ {
		f.Add(seed)
	}
	h := newHarness(f)
	f.Fuzz(func(t *testing.T, seed uint64) {
		matchesModel(t, h.with(t), seed, 200)
	})
}

// matchesModel installs the rule set of seed and sends n packets of it
// through the program, each of whose decisions must be the model's.
func matchesModel(t *testing.T, h *harness, seed uint64, n int) {
	t.Helper()
	other, otherIdx := h.otherIface()
	u := universe{rng: rand.New(rand.NewPCG(seed, 0x5eed)), other: other}
	settings := map[int]policy.Interface{
		1:        {},
		otherIdx: {DefaultDeny: seed%2 == 0, PerInterface: seed%3 == 0},
	}
	h.manage("lo", InterfaceSettings{})
	h.manage(other, InterfaceSettings{DefaultDeny: settings[otherIdx].DefaultDeny, PerInterfaceRules: settings[otherIdx].PerInterface})
	if err := h.f.Rules().Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Sessions opened under the last seed's rules would answer for
	// their flows; the reference model is stateless.
	if _, err := h.f.Sessions().Flush(conntrack.Filter{}); err != nil {
		t.Fatal(err)
	}
	nrules := 50 + u.rng.IntN(300)
	for range nrules {
		h.add(u.rule())
	}
	h.f.mu.Lock()
	rules := make([]policy.Rule, 0, len(h.f.tbl.Rules))
	for _, r := range h.f.tbl.Rules {
		rules = append(rules, *r)
	}
	h.f.mu.Unlock()

	mismatches := 0
	for i := range n {
		spec, ifindex := u.packet([]int{1, otherIdx})
		fragment := spec.FragOffset != 0 || spec.MoreFragments
		want := policy.Evaluate(rules, settings[ifindex], policy.Packet{
			Src: spec.Src, Dst: spec.Dst, Proto: spec.Proto,
			SrcPort: spec.SrcPort, DstPort: spec.DstPort,
			Ifindex: ifindex, Fragment: fragment,
		})
		res := h.run(spec, ifindex)
		got := res.decision()
		if want.Action == policy.ActionTProxy && !fragment && res.mark != defaultMark {
			t.Errorf("seed %d packet %d: steered without the mark", seed, i)
		}
		if (want.Action == policy.ActionDeny) != (res.code == tcShot) && want.Action != policy.ActionTProxy {
			t.Errorf("seed %d packet %d: code %d for %v", seed, i, res.code, want.Action)
		}
		if got != want {
			mismatches++
			if mismatches <= 5 {
				t.Errorf("seed %d packet %d %s %s:%d -> %s:%d if %d frag %v: bpf %+v, model %+v",
					seed, i, policy.ProtoName(spec.Proto), spec.Src, spec.SrcPort, spec.Dst, spec.DstPort,
					ifindex, fragment, got, want)
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("seed %d: %d of %d packets disagree (%d rules)", seed, mismatches, n, nrules)
	}
	t.Logf("seed %d: %d rules, %d packets agree", seed, nrules, n)
}
