package event_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/zfw-go/zfw/zfw/event"
)

// Events print as the C zfw's monitor prints them; a program that reads
// fw.Events picks what it wants by Kind and Reason.
func ExampleEvent_String() {
	at := time.Date(2026, 11, 29, 4, 12, 33, 123456789, time.UTC)
	events := []event.Event{
		{Time: at, Kind: event.Steer, Interface: "eth0", Protocol: 6,
			Src: netip.MustParseAddrPort("10.0.0.2:40000"), Dst: netip.MustParseAddrPort("10.9.0.5:80"), TProxyPort: 7000},
		{Time: at, Kind: event.Drop, Interface: "eth0", Protocol: 17, Reason: event.ReasonNoListener,
			Src: netip.MustParseAddrPort("[fd00::2]:5000"), Dst: netip.MustParseAddrPort("[fd00:99::10]:53"), TProxyPort: 7001},
		{Time: at, Kind: event.Session, Interface: "eth1", Egress: true, Protocol: 6, Session: event.Established,
			Src: netip.MustParseAddrPort("192.168.1.1:41000"), Dst: netip.MustParseAddrPort("1.1.1.1:443")},
	}
	for _, e := range events {
		fmt.Println(e)
		if e.Kind == event.Drop && e.Reason == event.ReasonNoListener {
			fmt.Printf("nothing listens on port %d\n", e.TProxyPort)
		}
	}
	// Output:
	// Nov 29 2026 04:12:33.123456789 : eth0 : INGRESS : TCP :10.0.0.2:40000 > 10.9.0.5:80 | tproxy ---> 127.0.0.1:7000
	// Nov 29 2026 04:12:33.123456789 : eth0 : INGRESS : UDP :[fd00::2]:5000 > [fd00:99::10]:53 | DROP: no TPROXY listener
	// nothing listens on port 7001
	// Nov 29 2026 04:12:33.123456789 : eth1 : EGRESS : TCP :192.168.1.1:41000 > 1.1.1.1:443 | session established
}
