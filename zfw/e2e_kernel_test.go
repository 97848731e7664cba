package zfw_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// kernelAtLeast reports whether the running kernel is release
// major.minor or later.
func kernelAtLeast(t *testing.T, major, minor int) (bool, string) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	var maj, min int
	if _, err := fmt.Sscanf(release, "%d.%d", &maj, &min); err != nil {
		t.Fatalf("kernel release %q: %v", release, err)
	}
	return maj > major || (maj == major && min >= minor), release
}

// Where the kernel has TCX (Linux 6.6), New attaches with TCX links and
// says nothing about it; where it has not, New attaches with a clsact
// filter and says which release TCX needs. Either way traffic is steered.
// The kernel matrix runs this on 6.1, where the fallback is real.
func TestNewAttachesWithTCXOrSaysWhyNot(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	r := newRouter(t, topo, zfw.Options{Logger: logger})
	r.steersTCP("kernel", "10.94.0.0/24", "10.94.0.9", 4040)

	var said []string
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "TCX") {
			said = append(said, e.Message)
		}
	}
	links, err := filepath.Glob(filepath.Join(r.pin, "links", topo.RouterClientIf+"-*"))
	if err != nil {
		t.Fatal(err)
	}
	filters, err := topo.Router.Exec(context.Background(), "tc", "filter", "show", "dev", topo.RouterClientIf, "ingress")
	if err != nil {
		t.Fatal(err)
	}
	tcx, release := kernelAtLeast(t, 6, 6)
	if tcx {
		if len(said) > 0 || len(links) != 2 || len(filters) != 0 {
			t.Errorf("kernel %s has TCX: want two pinned TCX links, no clsact filter and nothing said; got links %v, filters %q, said %q",
				release, links, filters, said)
		}
		t.Logf("kernel %s: attached with TCX links", release)
		return
	}
	want := fmt.Sprintf("TCX needs Linux 6.6 or later and kernel %s has none: attached with a clsact filter instead", release)
	if len(said) == 0 || said[0] != want {
		t.Errorf("kernel %s: said %q, want %q", release, said, want)
	}
	if len(links) != 0 || !strings.Contains(string(filters), "bpf") {
		t.Errorf("kernel %s has no TCX: want a clsact bpf filter and no TCX link; got links %v, filters %q", release, links, filters)
	}
	// The kernel matrix reads this line.
	t.Logf("kernel %s: attached with a clsact filter, and said why", release)
}
