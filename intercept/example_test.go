package intercept_test

import (
	"fmt"
	"net/netip"

	"github.com/zfw-go/zfw/intercept"
)

// An intercept as a controller may describe it: Validate says what is
// wrong, Normalize puts a valid one in canonical form, RuleCount says how
// many dataplane rules it takes.
func ExampleIntercept() {
	ic := intercept.Intercept{
		ServiceID:  "svc1",
		Protocols:  []intercept.Protocol{intercept.UDP, intercept.TCP, intercept.TCP},
		Addresses:  []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24"), netip.MustParsePrefix("fd00:9::/64")},
		Ports:      []intercept.PortRange{{Low: 443, High: 443}, {Low: 80, High: 90}},
		TProxyPort: 7000,
	}
	fmt.Println(ic.Validate())
	n := ic.Normalize()
	fmt.Println(n.Protocols, n.Ports, n.RuleCount())

	ic.Ports = append(ic.Ports, intercept.PortRange{Low: 9, High: 1})
	fmt.Println(ic.Validate())
	// Output:
	// <nil>
	// [tcp udp] [80-90 443] 8
	// intercept "svc1": ports[2]: low 9 > high 1
}

// Diff tells a tunneler what to change when the set of services changes.
func ExampleDiff() {
	web := intercept.Intercept{
		ServiceID: "web", Protocols: []intercept.Protocol{intercept.TCP},
		Addresses:  []netip.Prefix{netip.MustParsePrefix("10.9.0.1/32")},
		Ports:      []intercept.PortRange{{Low: 443, High: 443}},
		TProxyPort: 7000,
	}
	db := web
	db.ServiceID, db.Ports = "db", []intercept.PortRange{{Low: 5432, High: 5432}}
	moved := web
	moved.Addresses = []netip.Prefix{netip.MustParsePrefix("10.9.0.2/32")}

	d, err := intercept.Diff([]intercept.Intercept{web}, []intercept.Intercept{moved, db})
	if err != nil {
		panic(err)
	}
	for _, ic := range d.Added {
		fmt.Println("added", ic.ServiceID, ic.Ports)
	}
	for _, c := range d.Changed {
		fmt.Println("changed", c.Old.ServiceID, c.Old.Addresses, "to", c.New.Addresses)
	}
	fmt.Println("removed", len(d.Removed))
	// Output:
	// added db [5432]
	// changed web [10.9.0.1/32] to [10.9.0.2/32]
	// removed 0
}
