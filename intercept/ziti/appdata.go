package ziti

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/zfw-go/zfw/intercept"
)

// The AppData keys OpenZiti's hosting tunnelers read. Every value is a
// string.
const (
	AppDataProtocol   = "dst_protocol"
	AppDataIP         = "dst_ip"
	AppDataPort       = "dst_port"
	AppDataHostname   = "dst_hostname"
	AppDataSourceAddr = "source_addr"
)

// Flow is an intercepted TCP connection or UDP flow as the tunneler's
// TPROXY listener sees it.
type Flow struct {
	Protocol intercept.Protocol
	// Source is the client's address; Destination the original
	// destination (the accepted connection's local address).
	Source, Destination netip.AddrPort
}

// AppData returns the JSON the dialing side sends to the hosting side: the
// flow's protocol, destination IP and port, the destination hostname when
// not empty, and source_addr when not empty (the expanded sourceIp
// template). All values are strings, as the hosting side requires:
//
//	{"dst_hostname":"db.corp","dst_ip":"100.64.0.2","dst_port":"5432","dst_protocol":"tcp"}
func AppData(f Flow, dstHostname, sourceAddr string) ([]byte, error) {
	if f.Protocol != intercept.TCP && f.Protocol != intercept.UDP {
		return nil, fmt.Errorf("appdata: unknown protocol %q", f.Protocol)
	}
	if !f.Destination.IsValid() {
		return nil, fmt.Errorf("appdata: invalid destination")
	}
	m := map[string]string{
		AppDataProtocol: string(f.Protocol),
		AppDataIP:       f.Destination.Addr().Unmap().String(),
		AppDataPort:     strconv.Itoa(int(f.Destination.Port())),
	}
	if dstHostname != "" {
		m[AppDataHostname] = dstHostname
	}
	if sourceAddr != "" {
		m[AppDataSourceAddr] = sourceAddr
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("appdata: %w", err)
	}
	return b, nil
}
