package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// zfw -L -E lists the interfaces the owner manages with their settings,
// and the setting options (-e, -k, -6, ...) change them live through it;
// through its control socket and, once it has gone, from the kept
// dataplane; with neither it fails, as OpenZiti's start-up scripts expect
// of a zfw that is not running.
func TestInterfaceSettingsAreListedAndChangedThroughTheOwner(t *testing.T) {
	p := newPlace(t)
	ns := testenv.NewTestNamespace(t, "cli")
	var fw *zfw.Firewall
	err := ns.Do(func() error {
		var err error
		fw, err = zfw.New(zfw.Options{PinPath: p.pin, KeepOnClose: true, Interfaces: []zfw.Interface{
			{Name: "lo", InterfaceSettings: zfw.InterfaceSettings{Verbose: true, ICMPEcho: true}},
		}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p.serve(t, fw)
	want := []string{"lo\n", "verbose                 :1", "icmp echo               :1", "masquerade              :0", "ipv6 enable             :1"}
	check := func(how, out string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("zfw -L -E %s lacks %q:\n%s", how, w, out)
			}
		}
	}
	check("through the owner", p.must(t, "-L -E"))

	// Settings change live through the owner, one interface or all.
	for _, step := range []struct {
		line, want string
	}{
		{"-e lo -d", "icmp echo               :0"},
		{"-k lo", "masquerade              :1"},
		{"--masquerade all -d", "masquerade              :0"},
		{"-6 lo -d", "ipv6 enable             :0"},
		{"-P all", "per interface           :1"},
	} {
		p.must(t, step.line)
		if out := p.must(t, "-L -E"); !strings.Contains(out, step.want) {
			t.Errorf("after zfw %s, -L -E lacks %q:\n%s", step.line, step.want, out)
		}
	}
	if got := fw.Interfaces()[0]; got.ICMPEcho || got.Masquerade || !got.DisableIPv6 || !got.PerInterfaceRules || !got.Verbose {
		t.Errorf("the owner's settings after the CLI: %+v", got)
	}
	if code, _, errOut := p.zfwRun(t, "-e eth9"); code != 1 || !strings.Contains(errOut, "not an interface the dataplane manages") {
		t.Errorf("-e of an unmanaged interface: exit %d, %q", code, errOut)
	}
	for _, line := range []string{"-e lo -d", "-6 lo", "-P all -d"} {
		p.must(t, line)
	}

	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	kept := place{pin: p.pin, socket: filepath.Join(t.TempDir(), "none.sock")}
	want[2] = "icmp echo               :0"
	check("on the kept dataplane", kept.must(t, "--list --list-diag"))
	if code, _, errOut := kept.zfwRun(t, "-e lo"); code != 1 || !strings.Contains(errOut, "belongs to the dataplane's owner") {
		t.Errorf("a setting with no owner: exit %d, %q; want a refusal naming the owner", code, errOut)
	}

	none := place{pin: p.pin + "-none", socket: kept.socket}
	if code, _, errOut := none.zfwRun(t, "-L -E"); code == 0 || !strings.Contains(errOut, "no dataplane") {
		t.Errorf("-L -E with no dataplane: exit %d, %q; want a failure saying so", code, errOut)
	}
}
