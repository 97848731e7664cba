package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// BPFFSDir is where PinPath puts test pin folders.
const BPFFSDir = "/sys/fs/bpf"

// PinPath returns a pin folder for tb on the bpf filesystem that does not
// exist yet: BPFFSDir/TestPrefix + "PID-RAND" + "-" + name, so that Main
// and the stale cleanup know whose it is. When tb ends, anything still
// pinned there fails tb (a Firewall not closed, a kept dataplane not
// removed) and is removed.
func PinPath(tb testing.TB, name string) string {
	tb.Helper()
	cleanupStale(tb)
	path := filepath.Join(BPFFSDir, TestPrefix+uniqueID())
	if name != "" {
		path += "-" + name
	}
	tb.Cleanup(func() {
		if _, err := os.Lstat(path); err == nil {
			tb.Errorf("testenv: the test left pins in %s", path)
			if err := os.RemoveAll(path); err != nil {
				tb.Errorf("testenv: remove %s: %v", path, err)
			}
		}
	})
	return path
}

// LeakOption changes what Main's leak check accepts.
type LeakOption = goleak.Option

// IgnoreGoroutine lets goroutines with function fn anywhere in their
// stack outlive the tests: a library's background worker that cannot be
// stopped. Each use should say why.
func IgnoreGoroutine(fn string) LeakOption { return goleak.IgnoreAnyFunction(fn) }

// Main runs a package's tests and then fails the run (exit 1) if they
// left behind namespaces or pin folders made by this process (testenv's
// names carry the PID), test links (named with TestPrefix) in this
// process's network namespace, or goroutines. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
//
// What it finds is reported and removed, so the next run starts clean.
func Main(m *testing.M, opts ...LeakOption) int {
	linksBefore := testLinks()
	code := m.Run()
	leaks := leftovers(linksBefore)
	if err := goleak.Find(opts...); err != nil {
		leaks = append(leaks, err.Error())
	}
	if len(leaks) == 0 {
		return code
	}
	fmt.Fprintf(os.Stderr, "testenv: the tests left behind:\n  %s\n", strings.Join(leaks, "\n  "))
	return 1
}

// leftovers lists, and removes, the namespaces and pin folders of this
// process and the test links made since linksBefore.
func leftovers(linksBefore map[string]bool) []string {
	var leaks []string
	for _, dir := range []struct{ path, what string }{{NetnsDir, "namespace"}, {BPFFSDir, "pin folder"}} {
		for _, name := range ownedBy(dir.path, os.Getpid()) {
			path := filepath.Join(dir.path, name)
			leaks = append(leaks, fmt.Sprintf("%s %s", dir.what, path))
			var err error
			if dir.path == NetnsDir {
				err = removeNamed(path)
			} else {
				err = os.RemoveAll(path)
			}
			if err != nil {
				leaks = append(leaks, fmt.Sprintf("  (not removed: %v)", err))
			}
		}
	}
	for name := range testLinks() {
		if !linksBefore[name] {
			leaks = append(leaks, "link "+name)
		}
	}
	sort.Strings(leaks)
	return leaks
}

// ownedBy lists the entries of dir named TestPrefix + "PID-RAND"... with
// pid's PID.
func ownedBy(dir string, pid int) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if owner, ok := ownerPID(TestPrefix, e.Name()); ok && owner == pid {
			out = append(out, e.Name())
		}
	}
	return out
}

// testLinks are the links of this process's namespace whose names begin
// like TestPrefix ("zfwt").
func testLinks() map[string]bool {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, ifc := range ifs {
		if strings.HasPrefix(ifc.Name, strings.TrimSuffix(TestPrefix, "-")) {
			out[ifc.Name] = true
		}
	}
	return out
}

// StalePins lists, sorted, the pin folders in BPFFSDir that PinPath made
// for processes that no longer run.
func StalePins() []string {
	entries, err := os.ReadDir(BPFFSDir)
	if err != nil {
		return nil
	}
	var stale []string
	for _, e := range entries {
		pid, ok := ownerPID(TestPrefix, e.Name())
		if ok && pid != os.Getpid() && !processAlive(pid) {
			stale = append(stale, filepath.Join(BPFFSDir, e.Name()))
		}
	}
	sort.Strings(stale)
	return stale
}

// removeStalePins removes what StalePins lists.
func removeStalePins() ([]string, error) {
	var removed []string
	var errs []error
	for _, path := range StalePins() {
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("testenv: remove stale pins %s: %w", path, err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}
