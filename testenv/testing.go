package testenv

import (
	"context"
	"testing"
	"time"
)

// testSetupTimeout bounds the creation of a test's topology.
const testSetupTimeout = 30 * time.Second

// NewTestTopology creates a Topology for tb, named with TestPrefix, and
// deletes it when tb ends (tb.Cleanup). It calls RequirePrivileged first,
// so it skips (or, under CI, fails) without root, and deletes namespaces
// left by crashed earlier runs (CleanupStale(TestPrefix)) before making
// its own. A failure to create the topology fails tb at once.
func NewTestTopology(tb testing.TB) *Topology {
	tb.Helper()
	RequirePrivileged(tb)
	cleanupStale(tb)
	ctx, cancel := context.WithTimeout(tb.Context(), testSetupTimeout)
	defer cancel()
	t, err := NewTopology(ctx, TestPrefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := t.Close(); err != nil {
			tb.Error(err)
		}
	})
	return t
}

// NewTestNamespace creates a namespace for tb and deletes it when tb ends
// (tb.Cleanup). Its name is TestPrefix, the unique "PID-RAND" part
// NewTopology uses, "-" and name (name may be empty, and then the dash is
// left out), so tests running at once never collide and CleanupStale finds
// the namespace if the test binary dies. It calls RequirePrivileged and
// CleanupStale(TestPrefix) first, like NewTestTopology, and fails tb if the
// namespace cannot be made.
func NewTestNamespace(tb testing.TB, name string) *Namespace {
	tb.Helper()
	RequirePrivileged(tb)
	cleanupStale(tb)
	full := TestPrefix + uniqueID()
	if name != "" {
		full += "-" + name
	}
	n, err := NewNamespace(full)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Error(err)
		}
	})
	return n
}

// cleanupStale removes dead runs' test namespaces and pin folders, logging
// what it did; a failure there is logged, not fatal, since it does not
// stop this test.
func cleanupStale(tb testing.TB) {
	tb.Helper()
	removed, err := CleanupStale(TestPrefix)
	if len(removed) > 0 {
		tb.Logf("testenv: deleted stale namespaces of dead test runs: %v", removed)
	}
	if err != nil {
		tb.Logf("testenv: deleting stale namespaces: %v", err)
	}
	pins, err := removeStalePins()
	if len(pins) > 0 {
		tb.Logf("testenv: removed stale pins of dead test runs: %v", pins)
	}
	if err != nil {
		tb.Logf("testenv: removing stale pins: %v", err)
	}
}
