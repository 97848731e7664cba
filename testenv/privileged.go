// Package testenv builds network namespaces and veth topologies for tests
// and demos, and decides whether privileged tests run.
package testenv

import (
	"os"
	"testing"
)

// RequireEnv names the environment variable that turns a privileged test's
// skip into a failure. CI sets it (CI=true is honoured too), so a CI run
// proves that the privileged tests ran.
const RequireEnv = "ZFW_REQUIRE_PRIVILEGED"

// Privileged reports whether this process may load BPF programs and create
// namespaces: it runs as root.
func Privileged() bool { return os.Geteuid() == 0 }

// Required reports whether privileged tests must run (under CI, or with
// ZFW_REQUIRE_PRIVILEGED set): a skipped privileged test, or a check left
// out for want of a tool, must then fail instead.
func Required() bool {
	return os.Getenv(RequireEnv) != "" || os.Getenv("CI") == "true"
}

// RequirePrivileged skips tb when the process is not root, with a message
// that says so; under CI (or with ZFW_REQUIRE_PRIVILEGED set) it fails
// instead, because a skipped privileged test proves nothing.
func RequirePrivileged(tb testing.TB) {
	tb.Helper()
	if Privileged() {
		return
	}
	const msg = "needs root (BPF, netns, IP_TRANSPARENT); run as root"
	if Required() {
		tb.Fatalf("%s: privileged tests must run when %s or CI=true is set", msg, RequireEnv)
	}
	tb.Skip(msg)
}
