package bpfobj

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/zfw-go/zfw/testenv"
)

// TestObjectsLoad proves the committed object passes this kernel's verifier.
func TestObjectsLoad(t *testing.T) {
	testenv.RequirePrivileged(t)
	var objs ZfwObjects
	if err := LoadZfwObjects(&objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("verifier: %+v", ve)
		}
		t.Fatal(err)
	}
	defer objs.Close()
	info, err := objs.ZfwIngress.Info()
	if err != nil {
		t.Fatal(err)
	}
	if insns, ok := info.VerifiedInstructions(); ok {
		t.Logf("zfw_ingress: %d verified instructions", insns)
	}
}
