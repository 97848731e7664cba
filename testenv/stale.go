package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// TestPrefix begins the names of the namespaces NewTestTopology and
// NewTestNamespace create, and is the prefix to give CleanupStale for them.
const TestPrefix = "zfwt-"

// uniqueID returns "PID-RAND": the creating process's id, which tells
// CleanupStale whether the owner still runs, and 32 random bits, which keep
// the names of one process's topologies apart.
func uniqueID() string {
	return fmt.Sprintf("%d-%08x", os.Getpid(), rand.Uint32())
}

// ownerPID parses a name made as prefix + uniqueID() [+ "-" + anything] and
// returns the PID in it.
func ownerPID(prefix, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	pidStr, rest, ok := strings.Cut(rest, "-")
	if !ok || pidStr == "" || len(rest) < 8 {
		return 0, false
	}
	for _, c := range pidStr {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	for _, c := range rest[:8] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return 0, false
		}
	}
	if len(rest) > 8 && rest[8] != '-' {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// processAlive reports whether a process pid exists (in this PID namespace).
func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// StaleNamespaces lists, sorted, the namespaces in NetnsDir that this
// package created with prefix (NewTopology's and NewTestNamespace's, whose
// names carry their creator's PID) and whose creator no longer runs: the
// leftovers of a crashed or killed run. Namespaces of live processes,
// including other test binaries running now, and names not made by this
// package are never listed.
func StaleNamespaces(prefix string) ([]string, error) {
	if prefix == "" {
		return nil, errors.New("testenv: stale namespaces: empty prefix")
	}
	entries, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("testenv: stale namespaces: %w", err)
	}
	self := os.Getpid()
	var stale []string
	for _, e := range entries {
		pid, ok := ownerPID(prefix, e.Name())
		if !ok || pid == self || processAlive(pid) {
			continue
		}
		stale = append(stale, e.Name())
	}
	sort.Strings(stale)
	return stale, nil
}

// CleanupStale deletes the namespaces StaleNamespaces(prefix) lists (with
// their interfaces) and returns the names it deleted. It is safe to run
// while other processes use the same prefix: their namespaces are not
// stale. Use TestPrefix for the tests' leftovers.
func CleanupStale(prefix string) ([]string, error) {
	stale, err := StaleNamespaces(prefix)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, name := range stale {
		if err := removeNamed(filepath.Join(NetnsDir, name)); err != nil {
			errs = append(errs, fmt.Errorf("testenv: delete stale netns %s: %w", name, err))
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}
