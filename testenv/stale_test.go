package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestOwnerPID(t *testing.T) {
	for _, c := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"zfwt-123-0a1b2c3d", 123, true},
		{"zfwt-123-0a1b2c3d-c", 123, true},
		{"zfwt-123-0a1b2c3d-some-name", 123, true},
		{"zfwt-123-0a1b2c3dx", 0, false},
		{"zfwt-123-0A1B2C3D", 0, false},
		{"zfwt-123-0a1b2c", 0, false},
		{"zfwt-12a-0a1b2c3d", 0, false},
		{"zfwt--0a1b2c3d", 0, false},
		{"zfwt-0-0a1b2c3d", 0, false},
		{"zfwt-123", 0, false},
		{"zfw-123-0a1b2c3d", 0, false},
		{"other", 0, false},
	} {
		pid, ok := ownerPID("zfwt-", c.name)
		if pid != c.pid || ok != c.ok {
			t.Errorf("ownerPID(%q) = %d, %v; want %d, %v", c.name, pid, ok, c.pid, c.ok)
		}
	}
	if pid, ok := ownerPID(TestPrefix, TestPrefix+uniqueID()+"-x"); !ok || pid != os.Getpid() {
		t.Errorf("ownerPID of a uniqueID name = %d, %v", pid, ok)
	}
}

// sweepStaleTestPrefixes deletes what killed runs of TestCleanupStale left:
// entries named family+PID+"-"… whose PID is dead.
func sweepStaleTestPrefixes(t *testing.T, family string) {
	t.Helper()
	for _, name := range netnsEntries(t, family) {
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(name, family), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		if err := removeNamed(filepath.Join(NetnsDir, name)); err != nil {
			t.Fatal(err)
		}
		t.Logf("deleted %s, left by a killed run", name)
	}
}

func TestCleanupStale(t *testing.T) {
	RequirePrivileged(t)
	// A prefix of this test's and this process's own, so that other test
	// binaries cleaning TestPrefix, or running this test, at the same time
	// do not race with it.
	const family = "zfwst"
	sweepStaleTestPrefixes(t, family)
	prefix := fmt.Sprintf("%s%d-", family, os.Getpid())
	if _, err := StaleNamespaces(""); err == nil {
		t.Error("StaleNamespaces with an empty prefix succeeded")
	}

	dead := deadPID(t)
	staleName := fmt.Sprintf("%s%d-deadbeef-x", prefix, dead)
	stale, err := NewNamespace(staleName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stale.Close() })
	// An entry a crash left between creating the file and mounting it.
	unmountedName := fmt.Sprintf("%s%d-cafebabe", prefix, dead)
	if err := os.WriteFile(filepath.Join(NetnsDir, unmountedName), nil, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(filepath.Join(NetnsDir, unmountedName)) })
	// Ones that are not stale: this process's, and a name not made by
	// this package.
	for _, name := range []string{prefix + uniqueID() + "-live", prefix + "notours"} {
		n, err := NewNamespace(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := n.Close(); err != nil {
				t.Error(err)
			}
		})
	}

	want := []string{unmountedName, staleName}
	slices.Sort(want)
	got, err := StaleNamespaces(prefix)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("StaleNamespaces = %v, %v; want %v", got, err, want)
	}
	removed, err := CleanupStale(prefix)
	if err != nil || !slices.Equal(removed, want) {
		t.Fatalf("CleanupStale = %v, %v; want %v", removed, err, want)
	}
	for _, name := range want {
		if exists(t, filepath.Join(NetnsDir, name)) {
			t.Errorf("%s still exists", name)
		}
	}
	if got := netnsEntries(t, prefix); len(got) != 2 {
		t.Errorf("entries left %v, want the live and the foreign one", got)
	}
	// Closing a namespace that CleanupStale removed is fine.
	if err := stale.Close(); err != nil {
		t.Errorf("Close after CleanupStale: %v", err)
	}
}
