package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

// place is where a test's dataplane and control socket live.
type place struct{ pin, socket string }

func newPlace(t testing.TB) place {
	testenv.RequirePrivileged(t)
	p := place{
		pin:    testenv.PinPath(t, "cli"),
		socket: filepath.Join(t.TempDir(), "zfw.sock"),
	}
	t.Cleanup(func() { os.RemoveAll(p.pin) })
	return p
}

func (p place) getenv(k string) string {
	switch k {
	case envPinPath:
		return p.pin
	case envSocket:
		return p.socket
	}
	return os.Getenv(k)
}

// zfwRun runs a command line and returns its status and output.
func (p place) zfwRun(t testing.TB, line string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), strings.Fields(line), p.getenv, &out, &errOut)
	return code, out.String(), errOut.String()
}

// must runs a command line that must succeed.
func (p place) must(t testing.TB, line string) string {
	t.Helper()
	code, out, errOut := p.zfwRun(t, line)
	if code != 0 {
		t.Fatalf("zfw %s: exit %d: %s", line, code, errOut)
	}
	return out
}

// owner starts the Firewall that owns the place's dataplane.
func (p place) owner(t testing.TB, keep bool) *zfw.Firewall {
	t.Helper()
	fw, err := zfw.New(zfw.Options{PinPath: p.pin, KeepOnClose: keep, MaxRules: 4096, MaxPrefixes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

// serve serves fw on the place's socket until the test ends.
func (p place) serve(t testing.TB, fw *zfw.Firewall) {
	t.Helper()
	t.Cleanup(p.serveStoppable(t, fw))
}

// serveStoppable serves fw on the place's socket until the function it
// returns is called (more calls do nothing).
func (p place) serveStoppable(t testing.TB, fw *zfw.Firewall) func() {
	t.Helper()
	s, err := control.Listen(p.socket, fw, control.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

const (
	insert = "-I -c 100.64.0.2 -m 32 -p tcp -o 0.0.0.0 -n 0 -l 443 -h 443 -t 38123 -s 3TqdLrTn2A2F9vSi5JkQpx"
	remove = "-D -c 100.64.0.2 -m 32 -p tcp -o 0.0.0.0 -n 0 -l 443 -h 443"
	// OpenZiti's router writes any source as 0.0.0.0/0 for IPv6 too.
	insert6 = "-I -c fd00::1 -m 128 -p tcp -o 0.0.0.0 -n 0 -l 80 -h 80 -t 38124 -s 6TqdLrTn2A2F9vSi5JkQpx"
	remove6 = "-D -c fd00::1 -m 128 -p tcp -o 0.0.0.0 -n 0 -l 80 -h 80"
)

// exercise runs the rule operations as a router would, checking each.
func exercise(t *testing.T, p place) {
	p.must(t, insert)
	p.must(t, insert) // idempotent
	p.must(t, "-I -c 10.50.0.0 -m 16 -p udp -l 53 -h 53 -t 0")
	p.must(t, insert6)
	out := p.must(t, "-L")
	for _, want := range []string{
		"3TqdLrTn2A2F9vSi5JkQpx", "100.64.0.2/32", "dpts=443:443 TPROXY redirect 127.0.0.1:38123",
		"dpts=53:53 PASSTHRU to 10.50.0.0/16", "6TqdLrTn2A2F9vSi5JkQpx", "fd00::1/128", "Rule Count: 3 / 4096",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("zfw -L lacks %q:\n%s", want, out)
		}
	}
	if out := p.must(t, "-L -i"); strings.Contains(out, "PASSTHRU") || !strings.Contains(out, "TPROXY") {
		t.Errorf("zfw -L -i:\n%s", out)
	}
	p.must(t, remove6)
	if out := p.must(t, "-L"); strings.Contains(out, "fd00::1/128") {
		t.Errorf("zfw -L after the router's IPv6 -D:\n%s", out)
	}
	p.must(t, remove)
	code, _, errOut := p.zfwRun(t, remove)
	// Deleting what is not there succeeds, as in the C zfw: OpenZiti's
	// router logs any other exit as an error.
	if code != 0 || !strings.Contains(errOut, "no such rule") || !strings.Contains(errOut, "100.64.0.2/32") {
		t.Errorf("second -D: exit %d, %q; want 0 and a message naming the rule", code, errOut)
	}
	p.must(t, "-F")
	if out := p.must(t, "-L"); !strings.Contains(out, "Rule Count: 0 / 4096") {
		t.Errorf("zfw -L after -F:\n%s", out)
	}
}

func TestRunThroughControlSocket(t *testing.T) {
	p := newPlace(t)
	fw := p.owner(t, false)
	defer fw.Close()
	p.serve(t, fw)
	exercise(t, p)
}

func TestRunOnKeptDataplane(t *testing.T) {
	p := newPlace(t)
	if err := p.owner(t, true).Close(); err != nil {
		t.Fatal(err)
	}
	exercise(t, p)
	p.must(t, insert)
	// The owner comes back to the rule zfw left.
	fw := p.owner(t, false)
	defer fw.Close()
	if u := fw.Usage(); u.Rules != 1 {
		t.Errorf("owner adopted %d rules, want 1", u.Rules)
	}
}

// TestRunWithoutDataplane: with nothing running, reads and deletes fail
// and say what to start; an insert starts a dataplane (no interface
// attached) and keeps it, and the program that attaches it later adopts
// the rule. In a namespace of its own: the dataplane installs routing.
func TestRunWithoutDataplane(t *testing.T) {
	p := newPlace(t)
	ns := testenv.NewTestNamespace(t, "zfwcli")
	err := ns.Do(func() error {
		for _, line := range []string{"-L", remove, "-F"} {
			code, _, errOut := p.zfwRun(t, line)
			if code != 1 || !strings.Contains(errOut, "no dataplane at "+p.pin) || !strings.Contains(errOut, "start the program that owns the dataplane") {
				t.Errorf("zfw %s: exit %d, %q", line, code, errOut)
			}
		}
		if _, err := os.Stat(p.pin); !os.IsNotExist(err) {
			t.Errorf("a read created %s (%v)", p.pin, err)
		}
		code, _, errOut := p.zfwRun(t, insert)
		if code != 0 || !strings.Contains(errOut, "created one at "+p.pin) {
			t.Fatalf("insert with no dataplane: exit %d, %q", code, errOut)
		}
		if out := p.must(t, "-L"); !strings.Contains(out, "3TqdLrTn2A2F9vSi5JkQpx") {
			t.Errorf("the rule is not listed:\n%s", out)
		}
		fw, err := zfw.New(zfw.Options{PinPath: p.pin, Interfaces: []zfw.Interface{{Name: "lo"}}})
		if err != nil {
			return fmt.Errorf("the owner starting after zfw -I: %w", err)
		}
		defer fw.Close()
		if !fw.Usage().AdoptedDataplane || fw.Usage().Rules != 1 {
			t.Errorf("owner: %+v, want the adopted dataplane with zfw's rule", fw.Usage())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// -V needs no dataplane.
	if out := p.must(t, "-V"); !strings.HasPrefix(out, "zfw ") {
		t.Errorf("zfw -V: %q", out)
	}
}

func TestRunOnOwnedDataplaneWithoutSocket(t *testing.T) {
	p := newPlace(t)
	fw := p.owner(t, false)
	defer fw.Close()
	code, _, errOut := p.zfwRun(t, "-L")
	want := fmt.Sprintf("dataplane at %s is owned by pid %d", p.pin, os.Getpid())
	if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "has no control socket at "+p.socket) {
		t.Errorf("exit %d, %q; want 1 and %q", code, errOut, want)
	}
}

// BenchmarkInsert measures zfw -I runs through the control socket, as a
// router makes one per address × protocol × port range (each run dials,
// inserts one new rule and hangs up; process start-up is not included).
func BenchmarkInsert(b *testing.B) {
	p := newPlace(b)
	fw, err := zfw.New(zfw.Options{PinPath: p.pin, MaxRules: 1 << 18, MaxPrefixes: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer fw.Close()
	p.serve(b, fw)
	b.ResetTimer()
	for i := range b.N {
		// 4000 addresses, then the next port on each: every run adds a rule.
		a, port := i%4000, 1+i/4000
		line := fmt.Sprintf("-I -c 100.64.%d.%d -m 32 -p tcp -o 0.0.0.0 -n 0 -l %d -h %d -t 38123 -s svc", a/256, a%256, port, port)
		if code, _, errOut := p.zfwRun(b, line); code != 0 {
			b.Fatalf("zfw %s: %s", line, errOut)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inserts/s")
}

// served is a place whose dataplane has an owner serving its socket.
func served(t *testing.T) place {
	p := newPlace(t)
	fw := p.owner(t, false)
	t.Cleanup(func() { fw.Close() })
	p.serve(t, fw)
	return p
}

// rows are the rule lines of a zfw -L output, without its header and
// usage footer.
func rows(out string) []string {
	var rs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "accept") || strings.HasPrefix(l, "deny") {
			rs = append(rs, strings.Join(strings.Fields(l), " "))
		}
	}
	return rs
}
