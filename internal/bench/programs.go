package bench

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/zfw-go/zfw/internal/bpfobj"
)

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

// ProgramSize is a program of the dataplane's object and what the
// verifier made of it.
type ProgramSize struct {
	Name string
	// Instructions is the program's length; Verified the instructions
	// the verifier processed to prove it safe (all paths, with pruning).
	Instructions, Verified int
}

// VerifierSizes loads every program of the dataplane's object (with its
// maps, at their compiled sizes, unpinned) and returns each program's
// size and verified-instruction count, sorted by name.
func VerifierSizes() ([]ProgramSize, error) {
	spec, err := bpfobj.LoadZfw()
	if err != nil {
		return nil, fmt.Errorf("load object spec: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load object: %w", err)
	}
	defer coll.Close()
	var out []ProgramSize
	for name, prog := range coll.Programs {
		info, err := prog.Info()
		if err != nil {
			return nil, fmt.Errorf("program %s: info: %w", name, err)
		}
		verified, ok := info.VerifiedInstructions()
		if !ok {
			return nil, fmt.Errorf("program %s: the kernel does not report verified instructions", name)
		}
		out = append(out, ProgramSize{Name: name, Instructions: len(spec.Programs[name].Instructions), Verified: int(verified)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
