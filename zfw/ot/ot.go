// Package ot is the industrial-protocol (OT) filtering of a zfw
// dataplane, as an edge router in front of a plant network configures
// it.
//
// On interfaces set zfw.InterfaceSettings.OTFiltering, a DNP3 frame
// (TCP port 20000) needs an allowed application function code and, from
// the outstation, a clear DIR bit; a Modbus/TCP response (from port
// 502) must answer a request that left through the interface, once, and
// needs no configuration. zfw.Firewall.OT gives the Filter of a running
// dataplane.
package ot

import "context"

// Filter manages the DNP3 function codes OT filtering allows. The one
// zfw.Firewall.OT returns is safe for concurrent use, and its methods
// fail on a Firewall without a kernel dataplane (zfw.Options.InMemory).
// A change of several codes is all or nothing.
type Filter interface {
	// AllowDNP3 adds DNP3 application function codes to the allow
	// list.
	AllowDNP3(ctx context.Context, codes ...uint8) error
	// BlockDNP3 removes function codes from the allow list; a code not
	// on it is no error.
	BlockDNP3(ctx context.Context, codes ...uint8) error
	// DNP3Allowed lists the allowed DNP3 function codes, sorted.
	DNP3Allowed() ([]uint8, error)
}
