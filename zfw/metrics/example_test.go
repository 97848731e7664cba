package metrics_test

import (
	"fmt"
	"log"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/metrics"
	"github.com/zfw-go/zfw/zfw/zfwtest"
)

// A Firewall's counters and gauges on a Prometheus registry (served with
// promhttp.HandlerFor as usual). The firewall here is an in-memory one,
// which has usage gauges but no packet counters.
func ExampleNewCollector() {
	fw, err := zfwtest.Open(zfw.Interface{Name: "eth0"})
	if err != nil {
		log.Fatal(err)
	}
	defer fw.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(fw.Firewall))
	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, mf := range families {
		fmt.Println(mf.GetName())
	}
	// Output:
	// zfw_prefixes
	// zfw_prefixes_max
	// zfw_rules
	// zfw_rules_max
	// zfw_services
}
