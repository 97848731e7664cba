// Package ddos is the SYN-flood protection of a zfw dataplane, the part
// an edge router's firewall configures: which ports are guarded, which
// sources may open connections to them, and who is banned.
//
// Interfaces set zfw.InterfaceSettings.DDoSProtection count the SYNs of
// each source; one that sends more a second than zfw.Options.SYNFlood
// allows is banned, and its packets are dropped before any other work
// until the ban ends. zfw.Firewall.DDoS gives the Protection of a
// running dataplane.
package ddos

import (
	"context"
	"net/netip"
	"time"
)

// Protection manages SYN-flood protection: the protected ports, the
// allow-list and the current bans. The one zfw.Firewall.DDoS returns is
// safe for concurrent use, and its methods fail on a Firewall without a
// kernel dataplane (zfw.Options.InMemory). A change of several values
// is all or nothing: when one fails, those changed before it are put
// back.
type Protection interface {
	// ProtectPorts limits SYN counting to these destination ports (with
	// none protected, SYNs to every port count). Port 0 is an error.
	ProtectPorts(ctx context.Context, ports ...uint16) error
	// UnprotectPorts removes ports from the protected set; a port not
	// in it is no error.
	UnprotectPorts(ctx context.Context, ports ...uint16) error
	// ProtectedPorts lists the protected ports, sorted.
	ProtectedPorts() ([]uint16, error)

	// AllowSources puts sources on the allow-list, the C zfw's DDoS
	// list (zfw -y). Once it lists any source, and ports are protected,
	// a new connection to a protected port on a DDoS-protected
	// interface is admitted only from a listed source
	// (zfw.Stats.NotAllowed counts the rest, dropped), and no SYN is
	// counted towards a ban there: the list replaces the flood
	// threshold for those ports. With no port protected it gates
	// nothing, as in the C zfw.
	AllowSources(ctx context.Context, srcs ...netip.Addr) error
	// DisallowSources takes sources off the allow-list; the last one
	// off returns the protected ports to the flood threshold. A source
	// not on it is no error.
	DisallowSources(ctx context.Context, srcs ...netip.Addr) error
	// AllowedSources lists the allow-list, sorted.
	AllowedSources() ([]netip.Addr, error)

	// Bans lists the sources serving a ban, sorted.
	Bans() ([]Ban, error)
	// Unban lifts a source's ban; a source not banned is an error
	// wrapping zfw.ErrNotFound.
	Unban(ctx context.Context, src netip.Addr) error
}

// Ban is a source banned for flooding SYNs.
type Ban struct {
	Source       netip.Addr
	Since, Until time.Time
}

// SYNFlood is the SYN-flood threshold (zfw.Options.SYNFlood). Zero
// fields mean the defaults.
type SYNFlood struct {
	// SYNsPerSecond a source may send before it is banned; default 100.
	SYNsPerSecond int
	// BanDuration is how long a ban lasts; default 5 minutes.
	BanDuration time.Duration
}
