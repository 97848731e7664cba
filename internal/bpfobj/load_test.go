package bpfobj

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/zfw-go/zfw/testenv"
)

// VerifierBudget is what any one program may cost the verifier: a quarter
// of the kernel's limit of 1,000,000 processed instructions, so that other
// kernel builds, which count differently, and growth of the program stay
// far from the limit.
const VerifierBudget = 250_000

// TestObjectsLoad proves the committed object passes this kernel's
// verifier, and that every program stays within VerifierBudget.
func TestObjectsLoad(t *testing.T) {
	testenv.RequirePrivileged(t)
	spec, err := LoadZfw()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Every program of the object, whatever it holds.
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("verifier: %+v", ve)
		}
		t.Fatal(err)
	}
	defer coll.Close()
	t.Logf("load: %v", time.Since(start).Round(time.Millisecond))

	progs := coll.Programs
	for _, name := range sortedKeys(progs) {
		info, err := progs[name].Info()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		insns, ok := info.VerifiedInstructions()
		if !ok {
			t.Skipf("%s: this kernel does not report verified instructions (5.16 or later does)", name)
		}
		t.Logf("%s: %d verified instructions", name, insns)
		if insns > VerifierBudget {
			t.Errorf("%s verified in %d instructions, over the budget of %d; by function:\n%s",
				name, insns, VerifierBudget, costByFunction(t, name))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var logInsn = regexp.MustCompile(`^\d+: \(`)

// costByFunction loads the program alone with the verifier's instruction
// log and counts the instructions logged while each of its global
// functions was checked: where to look when a program grows.
func costByFunction(t *testing.T, prog string) string {
	spec, err := LoadZfw()
	if err != nil {
		return err.Error()
	}
	for name := range spec.Programs {
		if name != prog {
			delete(spec.Programs, name)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelInstruction, LogSizeStart: 1 << 28},
	})
	if err != nil {
		return fmt.Sprintf("reload with the verifier's log: %v", err)
	}
	defer coll.Close()
	fn, order, counts := prog+" (entry)", []string{prog + " (entry)"}, map[string]int{}
	for _, line := range strings.Split(coll.Programs[prog].VerifierLog, "\n") {
		if rest, ok := strings.CutPrefix(line, "Validating "); ok {
			fn = strings.Fields(rest)[0]
			order = append(order, fn)
		}
		if logInsn.MatchString(line) {
			counts[fn]++
		}
	}
	var b strings.Builder
	for _, fn := range order {
		fmt.Fprintf(&b, "  %-28s %d\n", fn, counts[fn])
	}
	return b.String()
}
