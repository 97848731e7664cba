package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The leak check finds this process's namespaces and pin folders, and
// removes them, and leaves alone those of another live process.
func TestLeftoversFindsWhatThisProcessLeftAndRemovesIt(t *testing.T) {
	RequirePrivileged(t)
	mine := TestPrefix + uniqueID() + "-leak"
	// PID 1 always runs: its names are never this process's leftovers.
	other := fmt.Sprintf("%s1-%08x-leak", TestPrefix, 0xabcdef01)
	ns, err := NewNamespace(mine)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	pins := filepath.Join(BPFFSDir, mine)
	otherPins := filepath.Join(BPFFSDir, other)
	for _, dir := range []string{pins, otherPins} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	defer os.RemoveAll(pins)
	defer os.RemoveAll(otherPins)

	got := leftovers(testLinks())
	want := []string{"namespace " + filepath.Join(NetnsDir, mine), "pin folder " + pins}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("leftovers %q lack %q", got, w)
		}
	}
	for _, g := range got {
		if g == "pin folder "+otherPins {
			t.Errorf("leftovers list another process's pins: %q", got)
		}
	}
	for _, path := range []string{pins, filepath.Join(NetnsDir, mine)} {
		if _, err := os.Lstat(path); err == nil {
			t.Errorf("%s is still there after the leak check", path)
		}
	}
	if _, err := os.Lstat(otherPins); err != nil {
		t.Errorf("another process's pins were removed: %v", err)
	}
	if again := leftovers(testLinks()); slices.Contains(again, "pin folder "+pins) {
		t.Errorf("a second check still finds %s", pins)
	}
}

// recorder is a testing.TB that keeps its cleanups and errors to itself.
type recorder struct {
	testing.TB
	cleanups []func()
	errors   []string
}

func (r *recorder) Helper()             {}
func (r *recorder) Cleanup(f func())    { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// end runs the cleanups in reverse order, as a test's end does.
func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// PinPath fails a test that leaves something pinned in its folder, and
// removes it; a test that cleans up passes.
func TestPinPathFailsATestThatLeavesPins(t *testing.T) {
	RequirePrivileged(t)
	tests := []struct {
		name  string
		leave bool
	}{
		{"cleaned up", false},
		{"left behind", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			path := PinPath(r, "kit")
			if _, err := os.Lstat(path); err == nil {
				t.Fatalf("PinPath returned %s, which exists already", path)
			}
			if owner, ok := ownerPID(TestPrefix, filepath.Base(path)); !ok || owner != os.Getpid() {
				t.Errorf("%s does not name this process (%d, %v)", path, owner, ok)
			}
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			if !tt.leave {
				os.Remove(path)
			}
			r.end()
			if failed := len(r.errors) > 0; failed != tt.leave {
				t.Errorf("errors %q; want a failure: %v", r.errors, tt.leave)
			}
			if _, err := os.Lstat(path); err == nil {
				os.RemoveAll(path)
				t.Errorf("%s is still there after the test ended", path)
			}
		})
	}
}
