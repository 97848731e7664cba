package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// zfw -Q removes a kept dataplane, all of it: its pins, its policy
// routing and its attachments, TCX links or (LegacyTC, and kernels
// without TCX) clsact filters. With the owner running it turns the
// dataplane off through the owner: every interface detached and the
// rules added with -I flushed, the owner's own intercepts kept.
func TestUninstallRemovesAKeptDataplane(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcx", true: "clsact"}[legacy], func(t *testing.T) {
			p := newPlace(t)
			ns := testenv.NewTestNamespace(t, "q")
			var fw *zfw.Firewall
			err := ns.Do(func() error {
				var err error
				fw, err = zfw.New(zfw.Options{PinPath: p.pin, KeepOnClose: true, LegacyTC: legacy, Interfaces: []zfw.Interface{{Name: "lo"}}})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			p.serve(t, fw)
			err = fw.Register(context.Background(), intercept.Intercept{
				ServiceID: "own", Protocols: []intercept.Protocol{intercept.TCP},
				Addresses: []netip.Prefix{netip.MustParsePrefix("10.66.0.1/32")},
				Ports:     []intercept.PortRange{{Low: 80, High: 80}}, TProxyPort: 4000,
			})
			if err != nil {
				t.Fatal(err)
			}
			p.must(t, insert)
			if code, _, errOut := p.zfwRun(t, "-Q"); code != 0 || !strings.Contains(errOut, "keeps running") {
				t.Fatalf("-Q with the owner running: exit %d, %q; want 0 and a note", code, errOut)
			}
			if n := attached(t, ns); n != 0 {
				t.Errorf("%d programs still attached to lo after -Q through the owner", n)
			}
			if rules := rows(p.must(t, "-L")); len(rules) == 0 || slices.ContainsFunc(rules, func(r string) bool { return strings.Contains(r, "100.64.0.2") }) {
				t.Errorf("after -Q through the owner, -L shows %q: want the owner's intercept and not the -I rule", rules)
			}
			// -X attaches again, and the kept dataplane is what the rest
			// of the test removes without its owner.
			ns.Do(func() error {
				p.must(t, "-X lo -z ingress")
				return nil
			})
			if err := fw.Close(); err != nil {
				t.Fatal(err)
			}
			if attached(t, ns) == 0 || onNamespace(t, ns) == 0 || !strings.Contains(exec(t, ns, "ip", "rule", "show"), "fwmark") {
				t.Fatal("the kept dataplane is not attached with its routing: nothing to prove")
			}

			q := place{pin: p.pin, socket: filepath.Join(t.TempDir(), "none.sock")}
			for i := range 2 { // a second -Q finds nothing and succeeds
				var code int
				var errOut string
				ns.Do(func() error {
					code, _, errOut = q.zfwRun(t, "-Q")
					return nil
				})
				if code != 0 {
					t.Fatalf("-Q (%d): exit %d: %s", i, code, errOut)
				}
			}
			if _, err := os.Stat(p.pin); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pins at %s after -Q: %v", p.pin, err)
			}
			if n := attached(t, ns); n != 0 {
				t.Errorf("%d programs still attached to lo after -Q", n)
			}
			if n := onNamespace(t, ns); n != 0 {
				t.Errorf("%d sk_lookup programs still on the namespace after -Q", n)
			}
			if out := exec(t, ns, "ip", "rule", "show"); strings.Contains(out, "fwmark") {
				t.Errorf("policy routing left after -Q:\n%s", out)
			}
		})
	}
}

// onNamespace counts the sk_lookup programs on ns.
func onNamespace(t *testing.T, ns *testenv.Namespace) int {
	t.Helper()
	n := 0
	err := ns.Do(func() error {
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		defer f.Close()
		r, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachSkLookup})
		if err != nil {
			return err
		}
		n = len(r.Programs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// attached counts the programs on lo in ns: TCX links and tc filters.
func attached(t *testing.T, ns *testenv.Namespace) int {
	t.Helper()
	return attachedTo(t, ns, "lo")
}

// attachedTo counts the programs on interface ifname in ns.
func attachedTo(t *testing.T, ns *testenv.Namespace, ifname string) int {
	t.Helper()
	n := 0
	err := ns.Do(func() error {
		lo, err := netInterfaceIndex(ifname)
		if err != nil {
			return err
		}
		for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			if r, err := link.QueryPrograms(link.QueryOptions{Target: lo, Attach: at}); err == nil {
				n += len(r.Programs)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"ingress", "egress"} {
		if strings.Contains(exec(t, ns, "tc", "filter", "show", "dev", ifname, dir), "bpf") {
			n++
		}
	}
	return n
}

func exec(t *testing.T, ns *testenv.Namespace, name string, args ...string) string {
	t.Helper()
	out, err := ns.Exec(context.Background(), name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}

func netInterfaceIndex(name string) (int, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifc.Index, nil
}
