package zfw

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/testenv"
)

// Return codes of a TC program.
const (
	tcOK   = 0
	tcShot = 2
	tcNext = 0xffffffff // TC_ACT_UNSPEC (-1)
)

// skbLayout holds the offsets of the __sk_buff fields the tests set and
// read, taken from the kernel's BTF rather than written down by hand.
type skbLayout struct {
	size, mark, ifindex, cb uint32
}

var (
	skbOnce sync.Once
	skb     skbLayout
	skbErr  error
)

func kernelSkbLayout() (skbLayout, error) {
	skbOnce.Do(func() {
		spec, err := btf.LoadKernelSpec()
		if err != nil {
			skbErr = err
			return
		}
		var st *btf.Struct
		if err := spec.TypeByName("__sk_buff", &st); err != nil {
			skbErr = err
			return
		}
		skb.size = st.Size
		for _, m := range st.Members {
			switch m.Name {
			case "mark":
				skb.mark = m.Offset.Bytes()
			case "ifindex":
				skb.ifindex = m.Offset.Bytes()
			case "cb":
				skb.cb = m.Offset.Bytes()
			}
		}
		if skb.mark == 0 || skb.ifindex == 0 || skb.cb == 0 {
			skbErr = errors.New("__sk_buff: mark, ifindex or cb not found in BTF")
		}
	})
	return skb, skbErr
}

// harness is a Firewall on a freshly loaded, unattached dataplane whose
// program the tests run on crafted packets with BPF_PROG_TEST_RUN.
type harness struct {
	t    testing.TB
	f    *Firewall
	prog *ebpf.Program
	skb  skbLayout
	// ifaces: interface name -> index, for test-run ifindex values.
	ifaces map[string]int
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessWith(t, Options{})
}

// newHarnessWith is newHarness with options (PinPath is chosen here).
func newHarnessWith(t testing.TB, opts Options) *harness {
	t.Helper()
	testenv.RequirePrivileged(t)
	layout, err := kernelSkbLayout()
	if err != nil {
		t.Fatalf("__sk_buff layout: %v", err)
	}
	pin := testenv.PinPath(t, "bpf")
	opts.PinPath = pin
	f, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	h := &harness{t: t, f: f, prog: f.dp.Objects().ZfwIngress, skb: layout, ifaces: map[string]int{}}
	// Test-run needs ifindexes that exist in this namespace; nothing is
	// attached to them and no packet leaves.
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		h.ifaces[ifc.Name] = ifc.Index
	}
	return h
}

// with returns a copy of the harness that reports to t (a subtest).
func (h *harness) with(t testing.TB) *harness {
	c := *h
	c.t = t
	return &c
}

// otherIface returns an interface that is not lo.
func (h *harness) otherIface() (string, int) {
	for name, idx := range h.ifaces {
		if idx != 1 {
			return name, idx
		}
	}
	h.t.Skip("needs a second interface in the namespace")
	return "", 0
}

// manage gives an interface settings, as attaching would.
func (h *harness) manage(name string, s InterfaceSettings) {
	h.t.Helper()
	idx, ok := h.ifaces[name]
	if !ok {
		h.t.Fatalf("no interface %s", name)
	}
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if err := h.f.setInterface(name, idx, s); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) add(r Rule) uint32 {
	h.t.Helper()
	id, err := h.f.Rules().Add(context.Background(), r)
	if err != nil {
		h.t.Fatalf("add %+v: %v", r, err)
	}
	return id
}

// result is what one run of the program shows.
type result struct {
	code uint32
	mark uint32
	cb   [2]uint32 // the decision the program recorded
	data []byte    // the packet as the program left it
}

func (h *harness) run(spec packet.Spec, ifindex int) result {
	h.t.Helper()
	return h.runFrame(packet.Build(spec), ifindex)
}

func (h *harness) runFrame(frame []byte, ifindex int) result {
	h.t.Helper()
	return h.runProgram(h.prog, frame, ifindex)
}

// egress runs the egress program on a packet leaving ifindex.
func (h *harness) egress(spec packet.Spec, ifindex int) result {
	h.t.Helper()
	return h.runProgram(h.f.dp.Objects().ZfwEgress, packet.Build(spec), ifindex)
}

func (h *harness) runProgram(prog *ebpf.Program, frame []byte, ifindex int) result {
	h.t.Helper()
	ctx := make([]byte, h.skb.size)
	binary.NativeEndian.PutUint32(ctx[h.skb.ifindex:], uint32(ifindex))
	out := make([]byte, h.skb.size)
	data := make([]byte, len(frame)+256)
	code, err := prog.Run(&ebpf.RunOptions{Data: frame, DataOut: data, Context: ctx, ContextOut: out})
	if err != nil {
		h.t.Fatalf("prog run (%d-byte frame): %v", len(frame), err)
	}
	res := result{code: code, mark: binary.NativeEndian.Uint32(out[h.skb.mark:]), data: data[:len(frame)]}
	res.cb[0] = binary.NativeEndian.Uint32(out[h.skb.cb:])
	res.cb[1] = binary.NativeEndian.Uint32(out[h.skb.cb+4:])
	return res
}

func (h *harness) stats() Stats {
	h.t.Helper()
	s, err := h.f.Stats()
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// decision is the verdict the program recorded in skb->cb.
func (r result) decision() policy.Decision {
	return policy.Decision{Action: policy.Action(r.cb[1] & 0xff), RuleID: r.cb[0], TProxyPort: uint16(r.cb[1] >> 16)}
}

// mapLen counts a map's entries.
func mapLen(t testing.TB, m *ebpf.Map) int {
	t.Helper()
	var n int
	it := m.Iterate()
	var k, v []byte
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// cpus is the number of possible CPUs (per-CPU maps have one slot each).
func (h *harness) cpus() int {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}
