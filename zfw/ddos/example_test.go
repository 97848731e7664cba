package ddos_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/ddos"
)

// A router guards its HTTPS port on its outside interface: a source that
// opens more than 50 connections a second is banned for ten minutes,
// except the monitoring host, which is on the allow-list. It needs root
// and a kernel that loads the dataplane, so it is compiled, not run.
func Example() {
	ctx := context.Background()
	fw, err := zfw.New(zfw.Options{
		Interfaces: []zfw.Interface{{Name: "eth0", InterfaceSettings: zfw.InterfaceSettings{DDoSProtection: true}}},
		SYNFlood:   ddos.SYNFlood{SYNsPerSecond: 50, BanDuration: 10 * time.Minute},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer fw.Close()
	guard := fw.DDoS()
	if err := guard.ProtectPorts(ctx, 443); err != nil {
		log.Fatal(err)
	}
	if err := guard.AllowSources(ctx, netip.MustParseAddr("192.0.2.10")); err != nil {
		log.Fatal(err)
	}
	bans, err := guard.Bans()
	if err != nil {
		log.Fatal(err)
	}
	for _, b := range bans {
		fmt.Printf("%s banned until %s\n", b.Source, b.Until.Format(time.TimeOnly))
	}
}
