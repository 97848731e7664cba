package zfwtest_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/zfwtest"
)

// What the dataplane would do with packets, after a tunneler registered
// a service: no root, no kernel.
func ExampleFirewall_Verdict() {
	fw, err := zfwtest.Open(zfw.Interface{Name: "eth0"})
	if err != nil {
		log.Fatal(err)
	}
	defer fw.Close()
	err = fw.Register(context.Background(), intercept.Intercept{
		ServiceID:  "svc1",
		Protocols:  []intercept.Protocol{intercept.TCP},
		Addresses:  []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")},
		Ports:      []intercept.PortRange{{Low: 8080, High: 8080}},
		TProxyPort: 7000,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range []zfwtest.Packet{
		zfwtest.TCP("192.168.1.5:40000", "10.9.0.5:8080", "eth0"),
		zfwtest.TCP("192.168.1.5:40000", "10.9.0.5:8081", "eth0"),
		zfwtest.UDP("192.168.1.5:40000", "10.9.0.5:8080", "eth0"),
	} {
		v := fw.Verdict(p)
		fmt.Printf("%s %s: %s %q %d\n", p.Protocol, p.Dst, v.Action, v.ServiceID, v.TProxyPort)
	}
	// Output:
	// tcp 10.9.0.5:8080: tproxy "svc1" 7000
	// tcp 10.9.0.5:8081: pass "" 0
	// udp 10.9.0.5:8080: pass "" 0
}
