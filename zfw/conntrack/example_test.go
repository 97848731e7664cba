package conntrack_test

import (
	"fmt"
	"net/netip"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw/conntrack"
)

// A Filter picks sessions as fw.Sessions().List and Flush do: here the
// inbound TCP sessions of one client network.
func ExampleFilter_Match() {
	sessions := []conntrack.Session{
		{Direction: conntrack.Inbound, Protocol: intercept.TCP, Interface: "eth0", State: "established",
			Client: netip.MustParseAddrPort("10.1.0.7:41000"), Server: netip.MustParseAddrPort("10.9.0.5:443"), TProxyPort: 7000},
		{Direction: conntrack.Outbound, Protocol: intercept.UDP, Interface: "eth1", State: "active",
			Client: netip.MustParseAddrPort("192.168.1.1:5353"), Server: netip.MustParseAddrPort("1.1.1.1:53")},
		{Direction: conntrack.Inbound, Protocol: intercept.TCP, Interface: "eth0", State: "opening",
			Client: netip.MustParseAddrPort("10.2.0.9:52000"), Server: netip.MustParseAddrPort("10.9.0.5:443")},
	}
	f := conntrack.Filter{Direction: conntrack.Inbound, Protocol: intercept.TCP, Address: netip.MustParsePrefix("10.1.0.0/16")}
	for _, s := range sessions {
		if f.Match(s) {
			fmt.Println(s.Client, "->", s.Server, s.State, "steered to", s.TProxyPort)
		}
	}
	// Output:
	// 10.1.0.7:41000 -> 10.9.0.5:443 established steered to 7000
}
