package zfw_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// A Firewall started with no interface steers nothing; Attach puts it on
// one at run time (routing and all) and Detach takes it off again, each
// proven by a real connection from the client namespace.
func TestEndToEndAttachAndDetachAtRunTime(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	pin := pinPath(t)
	t.Cleanup(func() { os.RemoveAll(pin) })
	var fw *zfw.Firewall
	if err := topo.Router.Do(func() error {
		var err error
		fw, err = zfw.New(zfw.Options{PinPath: pin})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	ctx := context.Background()
	ln := echoTCP(t, topo.Router, "127.0.0.1:0")
	if err := fw.Register(ctx, tcpIntercept("svc", "10.98.0.0/24", 8080, ln)); err != nil {
		t.Fatal(err)
	}
	const dst = "10.98.0.7:8080"
	steered := func() bool { return echoes(topo, dst) }
	if steered() {
		t.Fatal("steered with no interface attached")
	}
	ifc := zfw.Interface{Name: topo.RouterClientIf, InterfaceSettings: zfw.InterfaceSettings{Verbose: true}}
	for range 2 { // the second is a no-op
		if err := topo.Router.Do(func() error { return fw.Attach(ctx, ifc) }); err != nil {
			t.Fatal(err)
		}
	}
	if ifs := fw.Interfaces(); len(ifs) != 1 || ifs[0].Name != ifc.Name || !ifs[0].Verbose {
		t.Errorf("Interfaces after Attach: %+v", ifs)
	}
	if !steered() {
		t.Fatal("not steered after Attach")
	}
	if err := topo.Router.Do(func() error { return fw.Attach(ctx, zfw.Interface{Name: "zfwt-none0"}) }); err == nil {
		t.Error("Attach of a missing interface succeeded")
	}
	if err := fw.Detach(ctx, ifc.Name); err != nil {
		t.Fatal(err)
	}
	if ifs := fw.Interfaces(); len(ifs) != 0 {
		t.Errorf("Interfaces after Detach: %+v", ifs)
	}
	if steered() {
		t.Error("steered after Detach")
	}
	if err := fw.Detach(ctx, ifc.Name); !errors.Is(err, zfw.ErrNotFound) {
		t.Errorf("second Detach: %v, want ErrNotFound", err)
	}
	// And back: the same interface attaches again.
	if err := topo.Router.Do(func() error { return fw.Attach(ctx, ifc) }); err != nil {
		t.Fatal(err)
	}
	if !steered() {
		t.Error("not steered after attaching again")
	}
}
