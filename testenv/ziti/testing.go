package ziti

import "testing"

// StartTest starts a network for tb and stops it when tb ends. It fails tb
// when the network does not start. When tb has failed, the logs of
// quickstart and of the hosting tunnelers are kept and their directory is
// logged; otherwise everything is removed.
func StartTest(tb testing.TB, opts Options) *Network {
	tb.Helper()
	n, err := Start(tb.Context(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		failed := tb.Failed()
		if err := n.close(failed); err != nil {
			tb.Errorf("stop ziti network: %v", err)
		}
		if failed {
			tb.Logf("ziti logs kept in %s (quickstart: %s)", n.logDir, n.LogPath())
		}
	})
	return n
}
