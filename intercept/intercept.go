// Package intercept models the intercept of one Ziti service: which
// traffic a tunneler takes over (protocols, destination addresses and
// ports, optionally limited to some sources and interfaces) and which
// TPROXY listener receives it.
//
// The package validates intercepts, puts them in a canonical form, expands
// them into the dataplane's rules, and compares sets of them. It does no
// I/O: resolving interface names is left to the caller.
package intercept

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// Protocol is a transport protocol an intercept covers.
type Protocol string

// The protocols an intercept may cover.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// PortRange is an inclusive range of destination ports. A single port p is
// PortRange{Low: p, High: p}.
type PortRange struct {
	Low, High uint16
}

// String returns "80" for a single port and "8000-8099" for a range.
func (r PortRange) String() string {
	if r.Low == r.High {
		return fmt.Sprint(r.Low)
	}
	return fmt.Sprintf("%d-%d", r.Low, r.High)
}

// Intercept is the intercept of one service.
//
// The list fields are sets: their order does not matter and duplicates
// are ignored. Normalize returns the canonical form, and Equal compares
// two intercepts in that form. Validate lists the constraints on each
// field.
type Intercept struct {
	// ServiceID identifies the service. It is required: 1 to
	// policy.MaxServiceIDLen (32) bytes of printable ASCII without spaces.
	ServiceID string

	// ServiceName is informational, shown in listings. It is optional: at
	// most policy.MaxServiceNameLen (63) bytes, without ASCII control
	// characters.
	ServiceName string

	// Protocols are the covered protocols, TCP and/or UDP. At least one
	// is required.
	Protocols []Protocol

	// Addresses are the intercepted destination prefixes, IPv4 and/or
	// IPv6; a host is a /32 or a /128. At least one is required. Host bits
	// are ignored: 10.0.0.5/24 means 10.0.0.0/24. IPv4-mapped IPv6
	// prefixes (::ffff:a.b.c.d/n) are rejected; give the IPv4 prefix.
	Addresses []netip.Prefix

	// Ports are the intercepted destination port ranges, within 1-65535.
	// At least one is required.
	Ports []PortRange

	// SourcePrefixes, if any, limit the intercept to clients inside one of
	// them; empty means any source. Host bits are ignored. A source only
	// pairs with destination addresses of its own family, so when
	// SourcePrefixes is not empty, addresses of a family that has no
	// source prefix are not intercepted at all: no client of that family
	// is allowed. 0.0.0.0/0 and ::/0 allow every client of their family.
	SourcePrefixes []netip.Prefix

	// Interfaces, if any, limit the intercept to traffic arriving on these
	// interfaces; empty means every interface the firewall is attached
	// to. At most policy.MaxRuleInterfaces (8) distinct names, each a
	// valid Linux interface name.
	Interfaces []string

	// TProxyPort is the port of the transparent listener, on the loopback
	// address of the packet's family, that receives the intercepted
	// flows. It is required.
	TProxyPort uint16
}

// Normalize returns the canonical form of the intercept: prefixes masked
// to their length, and every list sorted and without duplicates (nil when
// empty). Two intercepts are Equal exactly when their normalised forms are
// identical. The copy shares no memory with the receiver.
//
// Normalize does not validate; it keeps invalid values (an invalid prefix
// becomes the zero Prefix), so the copy is valid exactly when the
// original is.
//
// The canonical order is: protocols by name; prefixes IPv4 first, then by
// address, then by length; port ranges by low then high port; interfaces
// by name.
func (i Intercept) Normalize() Intercept {
	n := i
	n.Protocols = sortedSet(i.Protocols, cmp.Compare[Protocol])
	n.Addresses = sortedSet(masked(i.Addresses), comparePrefixes)
	n.Ports = sortedSet(i.Ports, comparePortRanges)
	n.SourcePrefixes = sortedSet(masked(i.SourcePrefixes), comparePrefixes)
	n.Interfaces = sortedSet(i.Interfaces, cmp.Compare[string])
	return n
}

// Equal reports whether i and o describe the same intercept: the same
// service id, name and listener port, and the same sets of protocols,
// masked addresses, port ranges, masked source prefixes and interfaces,
// regardless of order and duplicates.
func (i Intercept) Equal(o Intercept) bool {
	if i.ServiceID != o.ServiceID || i.ServiceName != o.ServiceName || i.TProxyPort != o.TProxyPort {
		return false
	}
	a, b := i.Normalize(), o.Normalize()
	return slices.Equal(a.Protocols, b.Protocols) &&
		slices.Equal(a.Addresses, b.Addresses) &&
		slices.Equal(a.Ports, b.Ports) &&
		slices.Equal(a.SourcePrefixes, b.SourcePrefixes) &&
		slices.Equal(a.Interfaces, b.Interfaces)
}

// masked returns a new slice with every prefix masked to its length. An
// invalid prefix becomes the zero Prefix.
func masked(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	out := make([]netip.Prefix, len(ps))
	for k, p := range ps {
		out[k] = p.Masked()
	}
	return out
}

// sortedSet returns a sorted copy of in without duplicates, or nil if in
// is empty. It never modifies in.
func sortedSet[T any](in []T, compare func(a, b T) int) []T {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.SortFunc(out, compare)
	return slices.CompactFunc(out, func(a, b T) bool { return compare(a, b) == 0 })
}

// comparePrefixes orders prefixes IPv4 first, then by address, then by
// length. Invalid prefixes (the zero Prefix) sort first.
func comparePrefixes(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// comparePortRanges orders ranges by low port, then by high port.
func comparePortRanges(a, b PortRange) int {
	return cmp.Or(cmp.Compare(a.Low, b.Low), cmp.Compare(a.High, b.High))
}
