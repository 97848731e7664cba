package main

import (
	"os"
	"testing"

	"github.com/zfw-go/zfw/testenv"
)

// TestMain fails the package's run if its tests leave namespaces, pins,
// links or goroutines behind. One goroutine of sdk-golang may outlive a
// closed Ziti context: the edge router channel's latency probe sleeps its
// interval (30 s) before it sees the channel closed and returns, and
// nothing can wake it.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.IgnoreGoroutine("github.com/openziti/channel/v4/latency.ProbeLatencyConfigurable")))
}
