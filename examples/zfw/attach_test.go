package main

import (
	"strings"
	"testing"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// ownedNamespace is a namespace with veths zfwa0 and zfwa1, and an owner
// there that attached nothing, serving the place's socket, as
// edge-router does before any -X.
func ownedNamespace(t *testing.T) (place, *testenv.Namespace, *zfw.Firewall) {
	t.Helper()
	p := newPlace(t)
	ns := testenv.NewTestNamespace(t, "att")
	for _, v := range []string{"zfwa0", "zfwa1"} {
		exec(t, ns, "ip", "link", "add", v, "type", "veth", "peer", "name", v+"p")
		exec(t, ns, "ip", "link", "set", v, "up")
	}
	var fw *zfw.Firewall
	if err := ns.Do(func() error {
		var err error
		fw, err = zfw.New(zfw.Options{PinPath: p.pin, MaxRules: 4096, MaxPrefixes: 1024})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	p.serve(t, fw)
	return p, ns, fw
}

// -X -z ingress and -H attach through the owner, -X -z ingress -d
// detaches; -X -z egress needs nothing more and says so; -X -z egress -d
// turns the egress filtering settings off; -Z sets the Ziti tun.
func TestAttachThroughTheOwner(t *testing.T) {
	p, ns, fw := ownedNamespace(t)
	managed := func() []string {
		var names []string
		for _, ifc := range fw.Interfaces() {
			names = append(names, ifc.Name)
		}
		return names
	}
	p.must(t, "-X zfwa0 -O /opt/openziti/bin/zfw_tc_ingress.o -z ingress")
	if got := managed(); len(got) != 1 || got[0] != "zfwa0" || attachedTo(t, ns, "zfwa0") != 2 {
		t.Fatalf("after -X zfwa0 -z ingress: managed %v, %d programs on it; want zfwa0 with both", got, attachedTo(t, ns, "zfwa0"))
	}
	code, _, errOut := p.zfwRun(t, "-X zfwa0 -z egress")
	if code != 0 || !strings.Contains(errOut, "attached with the ingress one") {
		t.Errorf("-X -z egress: exit %d, %q", code, errOut)
	}
	p.must(t, "-b zfwa0")
	p.must(t, "-k zfwa0")
	p.must(t, "-X zfwa0 -z egress -d")
	if s := fw.Interfaces()[0]; s.OutboundFilter || s.Masquerade || attachedTo(t, ns, "zfwa0") != 2 {
		t.Errorf("after -X -z egress -d: %+v, %d programs; want outbound filter and masquerade off, still attached", s, attachedTo(t, ns, "zfwa0"))
	}
	p.must(t, "-H zfwa1")
	if got := managed(); len(got) != 2 || attachedTo(t, ns, "zfwa1") != 2 {
		t.Errorf("after -H zfwa1: managed %v", got)
	}
	p.must(t, "-X zfwa0 -z ingress -d")
	if got := managed(); len(got) != 1 || got[0] != "zfwa1" || attachedTo(t, ns, "zfwa0") != 0 {
		t.Errorf("after -X zfwa0 -d: managed %v, %d programs on zfwa0", got, attachedTo(t, ns, "zfwa0"))
	}
	if code, _, errOut := p.zfwRun(t, "-X zfwa0 -z ingress -d"); code != 1 || !strings.Contains(errOut, "not an interface the dataplane manages") {
		t.Errorf("detaching what is not attached: exit %d, %q", code, errOut)
	}
	if code, _, errOut := p.zfwRun(t, "-X zfwt-none0 -z ingress"); code != 1 || !strings.Contains(errOut, "zfwt-none0") {
		t.Errorf("attaching a missing interface: exit %d, %q", code, errOut)
	}
	p.must(t, "-Z zfwa0")
	if tun := fw.Tunnel(); tun.Interface != "zfwa0" {
		t.Errorf("after -Z zfwa0: tunnel %+v", tun)
	}
	p.must(t, "-Z zfwa0 -d")
	if tun := fw.Tunnel(); tun.Interface != "" {
		t.Errorf("after -Z -d: tunnel %+v", tun)
	}
}

// With no owner serving, attaching is refused with why, on a kept
// dataplane as with none.
func TestAttachNeedsTheOwner(t *testing.T) {
	p := newPlace(t)
	if err := p.owner(t, true).Close(); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"-X lo -z ingress", "-H lo", "-Z ziti0"} {
		if code, _, errOut := p.zfwRun(t, line); code != 1 || !strings.Contains(errOut, "belongs to the dataplane's owner") {
			t.Errorf("zfw %s with no owner: exit %d, %q", line, code, errOut)
		}
	}
}
