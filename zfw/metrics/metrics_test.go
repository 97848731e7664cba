package metrics_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/metrics"
	"github.com/zfw-go/zfw/zfw/zfwtest"
)

func register(t *testing.T, fw *zfw.Firewall) {
	t.Helper()
	err := fw.Register(context.Background(), intercept.Intercept{
		ServiceID: "svc1", Protocols: []intercept.Protocol{intercept.TCP, intercept.UDP},
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")},
		Ports:     []intercept.PortRange{{Low: 80, High: 80}}, TProxyPort: 7000,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCollectorInMemory(t *testing.T) {
	fw := zfwtest.New(t)
	register(t, fw.Firewall)
	c := metrics.NewCollector(fw.Firewall)
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP zfw_rules Installed rules (intercepts included).
# TYPE zfw_rules gauge
zfw_rules 2
# HELP zfw_services Registered intercepts.
# TYPE zfw_services gauge
zfw_services 1
`), "zfw_rules", "zfw_services"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "zfw_rule_hits_total"); n != 2 {
		t.Errorf("%d rule hit series, want 2", n)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestCollectorOnTheKernelDataplane(t *testing.T) {
	testenv.RequirePrivileged(t)
	ns := testenv.NewTestNamespace(t, "metrics")
	pin := testenv.PinPath(t, "metrics")
	var fw *zfw.Firewall
	err := ns.Do(func() error {
		var err error
		fw, err = zfw.New(zfw.Options{PinPath: pin, Interfaces: []zfw.Interface{{Name: "lo"}}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	register(t, fw)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(metrics.NewCollector(fw)); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range families {
		seen[mf.GetName()] = true
	}
	for _, want := range []string{"zfw_packets_total", "zfw_rule_hits_total", "zfw_sessions", "zfw_rules", "zfw_prefixes"} {
		if !seen[want] {
			t.Errorf("no %s in %v", want, seen)
		}
	}
}
