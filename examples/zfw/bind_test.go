package main

import (
	"strings"
	"testing"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// -B makes a prefix local in the owner's namespace (a route on lo), as
// ziti-edge-tunnel asks for the AllowedSourceAddresses of the services
// it hosts; each -B is counted, -J takes one back (and of a prefix not
// there, exits 0 as the callers expect), -F -j takes back all. The
// owner's Close removes what is left.
func TestBindAddressesAreLocalRoutesCountedThroughTheOwner(t *testing.T) {
	p := newPlace(t)
	ns := testenv.NewTestNamespace(t, "bind")
	var fw *zfw.Firewall
	if err := ns.Do(func() error {
		var err error
		fw, err = zfw.New(zfw.Options{PinPath: p.pin, MaxRules: 1024, MaxPrefixes: 1024})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			fw.Close()
		}
	})
	stop := p.serveStoppable(t, fw)
	t.Cleanup(stop)
	local := func(addr string) bool {
		t.Helper()
		// No route at all (the namespace has no other) is not local.
		out, err := ns.Exec(t.Context(), "ip", "route", "get", addr)
		return err == nil && strings.HasPrefix(string(out), "local ")
	}
	routes := func() string {
		return exec(t, ns, "ip", "route", "show", "table", "local", "proto", "250") +
			exec(t, ns, "ip", "-6", "route", "show", "table", "local", "proto", "250")
	}

	p.must(t, "-B 10.5.0.0 -m 24")
	p.must(t, "-B 10.5.0.9 -m 24") // the same prefix, written with host bits
	p.must(t, "-B fd00:5:: -m 64")
	if !local("10.5.0.77") || !local("fd00:5::77") {
		t.Fatalf("after -B, addresses of the prefixes are not local:\n%s", routes())
	}
	if local("10.5.1.1") {
		t.Errorf("an address outside the prefix is local:\n%s", routes())
	}
	p.must(t, "-J 10.5.0.0 -m 24")
	if !local("10.5.0.77") {
		t.Errorf("one -J of a prefix added twice took it away:\n%s", routes())
	}
	p.must(t, "-J 10.5.0.0 -m 24")
	if local("10.5.0.77") {
		t.Errorf("the second -J left the prefix local:\n%s", routes())
	}
	if code, _, errOut := p.zfwRun(t, "-J 10.5.0.0 -m 24"); code != 0 || !strings.Contains(errOut, "nothing to remove") {
		t.Errorf("-J of a prefix not there: exit %d, %q; want 0 and a note", code, errOut)
	}
	p.must(t, "-B 10.6.0.0 -m 16")
	p.must(t, "-B 10.6.0.0 -m 16")
	p.must(t, "-F -j")
	if local("10.6.1.1") || local("fd00:5::77") {
		t.Errorf("-F -j left local sources:\n%s", routes())
	}

	p.must(t, "-B 10.7.0.0 -m 24")
	stop()
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if local("10.7.0.1") {
		t.Errorf("the owner's Close left its local sources:\n%s", routes())
	}
}
