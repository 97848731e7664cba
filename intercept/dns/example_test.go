package dns_test

import (
	"context"
	"fmt"
	"net/netip"

	mdns "github.com/miekg/dns"

	"github.com/zfw-go/zfw/intercept/dns"
)

// The method set intercept/ziti expects of its Resolver.
var _ interface {
	AddHostname(owner, name string) (netip.Addr, error)
	RemoveHostname(owner, name string)
	AddWildcard(owner, pattern string, onAllocate func(name string, addr netip.Addr) error) error
	RemoveWildcard(owner, pattern string)
	Lookup(addr netip.Addr) (string, bool)
} = (*dns.Server)(nil)

func ExampleServer() {
	srv, err := dns.New(dns.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		panic(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		panic(err)
	}
	defer srv.Close()

	// A host name gets its address at once; a wildcard when it is queried.
	addr, _ := srv.AddHostname("service-1", "db.internal")
	fmt.Println("db.internal:", addr)
	_ = srv.AddWildcard("service-2", "*.example.com", func(name string, addr netip.Addr) error {
		fmt.Println("intercept", name, "at", addr) // runs before the answer leaves
		return nil
	})

	q := new(mdns.Msg)
	q.SetQuestion("www.example.com.", mdns.TypeA)
	resp, _, err := new(mdns.Client).Exchange(q, srv.LocalAddr().String())
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Answer[0].(*mdns.A).A)

	name, _ := srv.Lookup(netip.MustParseAddr("100.64.0.3"))
	fmt.Println("100.64.0.3 is", name)
	// Output:
	// db.internal: 100.64.0.2
	// intercept www.example.com at 100.64.0.3
	// 100.64.0.3
	// 100.64.0.3 is www.example.com
}
