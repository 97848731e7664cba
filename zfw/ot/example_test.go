package ot_test

import (
	"context"
	"fmt"
	"log"

	"github.com/zfw-go/zfw/zfw"
)

// A router in front of a DNP3 outstation lets through reads and their
// responses only (function codes 1 READ and 129 RESPONSE). It needs root
// and a kernel that loads the dataplane, so it is compiled, not run.
func Example() {
	ctx := context.Background()
	fw, err := zfw.New(zfw.Options{
		Interfaces: []zfw.Interface{{Name: "eth1", InterfaceSettings: zfw.InterfaceSettings{OTFiltering: true}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer fw.Close()
	if err := fw.OT().AllowDNP3(ctx, 1, 129); err != nil {
		log.Fatal(err)
	}
	codes, err := fw.OT().DNP3Allowed()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("DNP3 function codes allowed:", codes)
}
