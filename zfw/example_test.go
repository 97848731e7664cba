package zfw_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/tproxy"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/zfwtest"
)

// A tunneler's use of zfw: the dataplane on eth0, a TPROXY listener, and
// one service intercepted into it. It needs root; the README shows this
// function's body.
func Example() {
	ctx := context.Background()
	fw, err := zfw.New(zfw.Options{
		Interfaces: []zfw.Interface{{Name: "eth0"}},
		Logger:     logrus.StandardLogger(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer fw.Close()

	ln, err := tproxy.ListenTCP(ctx, netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	err = fw.Register(ctx, intercept.Intercept{
		ServiceID: "3TqdLrTn2A2F9vSi5JkQpx", ServiceName: "echo",
		Protocols:  []intercept.Protocol{intercept.TCP},
		Addresses:  []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")},
		Ports:      []intercept.PortRange{{Low: 8080, High: 8080}},
		TProxyPort: ln.Port(),
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := ln.Accept() // c.LocalAddr() is the original destination, e.g. 10.9.0.5:8080
	if err != nil {
		log.Fatal(err)
	}
	c.Close()
	if err := fw.Unregister(ctx, "3TqdLrTn2A2F9vSi5JkQpx"); err != nil {
		log.Fatal(err)
	}
}

// Rules that are not intercepts: here a pass rule for the router's own
// listener, listed with its mapping as zfw -L shows it. An in-memory firewall from
// zfwtest needs no root.
func ExampleRules() {
	fw, err := zfwtest.Open(zfw.Interface{Name: "eth0"})
	if err != nil {
		log.Fatal(err)
	}
	defer fw.Close()
	_, err = fw.Rules().Add(context.Background(), zfw.Rule{
		Action:      zfw.Pass,
		Protocol:    intercept.TCP,
		Destination: netip.MustParsePrefix("192.168.1.1/32"),
		Ports:       intercept.PortRange{Low: 443, High: 443},
		Interfaces:  []string{"eth0"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range fw.Rules().List() {
		fmt.Println(r.Action, r.Protocol, r.Destination, r.Ports, r.Interfaces)
	}
	u := fw.Usage()
	fmt.Printf("%d of %d rules\n", u.Rules, u.MaxRules)
	// Output:
	// pass tcp 192.168.1.1/32 443 [eth0]
	// 1 of 250000 rules
}
