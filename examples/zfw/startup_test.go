package main

import (
	"strings"
	"testing"

	"github.com/zfw-go/zfw/zfw"
)

// The C zfw's router start-up script (start_ebpf_router.py), run against
// a real owner in a namespace, then the command lines OpenZiti's router
// and tunneler exec as their diverter; the dataplane is checked after
// each step.
func TestRouterStartUpSequenceAndOpenZitiCommandLines(t *testing.T) {
	p, ns, fw := ownedNamespace(t)
	iface := func(name string) *zfw.Interface {
		for _, ifc := range fw.Interfaces() {
			if ifc.Name == name {
				return &ifc
			}
		}
		return nil
	}
	rule := func(want string) func(t *testing.T, out string) {
		return func(t *testing.T, _ string) {
			t.Helper()
			if l := strings.Join(rows(p.must(t, "-L")), "\n"); !strings.Contains(l, want) {
				t.Errorf("zfw -L lacks %q:\n%s", want, l)
			}
		}
	}
	for _, step := range []struct {
		line  string
		check func(t *testing.T, out string)
	}{
		// The script asks whether zfw is up; an owner answers, so it does
		// not reinstall (-Q) but goes on to attach.
		{"-L -E", func(t *testing.T, out string) {
			if !strings.Contains(out, "no interface is managed") {
				t.Errorf("-L -E before any -X: %q", out)
			}
		}},
		{"-X zfwa0 -O /opt/openziti/bin/zfw_tc_ingress.o -z ingress", func(t *testing.T, _ string) {
			if iface("zfwa0") == nil || attachedTo(t, ns, "zfwa0") != 2 {
				t.Errorf("zfwa0 not attached: %+v", fw.Interfaces())
			}
		}},
		{"-T zfwa0", func(t *testing.T, _ string) {
			if ifc := iface("zfwa0"); ifc == nil || !ifc.TunnelMode {
				t.Errorf("tun mode not on: %+v", ifc)
			}
		}},
		{"-P zfwa0", func(t *testing.T, _ string) {
			if ifc := iface("zfwa0"); ifc == nil || !ifc.PerInterfaceRules {
				t.Errorf("per-interface rules not on: %+v", ifc)
			}
		}},
		{"-X zfwa0 -O /opt/openziti/bin/zfw_tc_outbound_track.o -z egress", func(t *testing.T, _ string) {
			if attachedTo(t, ns, "zfwa0") != 2 {
				t.Error("the egress program is not on zfwa0")
			}
		}},
		// The script's pass-through rules for the router's own listeners,
		// on the LAN interface's address.
		{"-I -c 10.0.0.1 -m 32 -p tcp -l 443 -h 443 -t 0 -N zfwa0", rule("dpts=443:443 PASSTHRU to 10.0.0.1/32 zfwa0")},
		{"-I -c 10.0.0.1 -m 32 -p tcp -l 80 -h 80 -t 0 -N zfwa0", rule("dpts=80:80 PASSTHRU to 10.0.0.1/32 zfwa0")},
		{"-L -E", func(t *testing.T, out string) {
			for _, w := range []string{"zfwa0\n", "tun mode intercept      :1", "per interface           :1"} {
				if !strings.Contains(out, w) {
					t.Errorf("-L -E lacks %q:\n%s", w, out)
				}
			}
		}},
		// OpenZiti: the diverter probe, then a service's intercepts in,
		// and out again, IPv4 and IPv6, as the router writes them.
		{"-V", func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "zfw ") {
				t.Errorf("-V: %q", out)
			}
		}},
		{insert, rule("TPROXY redirect 127.0.0.1:38123")},
		{insert6, rule("TPROXY redirect [::1]:38124")},
		{"-I -c 100.64.0.3 -m 32 -p udp -o 0.0.0.0 -n 0 -l 53 -h 53 -t 38125 -s 3TqdLrTn2A2F9vSi5JkQpx -N zfwa0", rule("TPROXY redirect 127.0.0.1:38125")},
		{remove, func(t *testing.T, _ string) {
			if strings.Contains(p.must(t, "-L"), "100.64.0.2/32") {
				t.Error("the deleted intercept is still listed")
			}
		}},
		{remove6, func(t *testing.T, _ string) {
			if strings.Contains(p.must(t, "-L"), "fd00::1/128") {
				t.Error("the deleted IPv6 intercept is still listed")
			}
		}},
		// The script on a restart: flush the ingress rules (with their lo
		// addresses) and add them again.
		{"-F -z ingress -r", func(t *testing.T, _ string) {
			if rows := rows(p.must(t, "-L")); len(rows) != 0 {
				t.Errorf("rules after -F -z ingress -r: %q", rows)
			}
		}},
		{"-I -c 10.0.0.1 -m 32 -p tcp -l 443 -h 443 -t 0 -N zfwa0", rule("dpts=443:443 PASSTHRU to 10.0.0.1/32 zfwa0")},
	} {
		t.Run(step.line, func(t *testing.T) {
			step.check(t, p.must(t, step.line))
		})
	}
	if got := fw.Usage().Rules; got != 1 {
		t.Errorf("the owner holds %d rules at the end, want 1", got)
	}
}
