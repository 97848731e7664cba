package control_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
	"github.com/zfw-go/zfw/zfw/zfwtest"
)

// The owner of a dataplane serves its control socket; the zfw command,
// or any program of root's, changes rules through it.
func ExampleDial() {
	fw, err := zfwtest.Open(zfw.Interface{Name: "eth0"})
	if err != nil {
		log.Fatal(err)
	}
	defer fw.Close()
	dir, err := os.MkdirTemp("", "zfw")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	s, err := control.Listen(filepath.Join(dir, "zfw.sock"), fw.Firewall, control.ServerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	go s.Serve(ctx)

	c, err := control.Dial(ctx, s.Path())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	r := control.Rule{Match: control.Match{
		Destination: netip.MustParsePrefix("100.64.0.2/32"),
		Protocol:    intercept.TCP,
		Ports:       intercept.PortRange{Low: 443, High: 443},
	}, TProxyPort: 38123, ServiceID: "3TqdLrTn2A2F9vSi5JkQpx"}
	for range 2 {
		change, err := c.Insert(ctx, r) // as zfw -I does
		fmt.Println(change, err)
	}
	l, err := c.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(l.Rules), l.Rules[0].Action, l.Rules[0].TProxyPort)
	// Output:
	// added <nil>
	// unchanged <nil>
	// 1 tproxy 38123
}
