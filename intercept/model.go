// Package intercept is the model of a Ziti service's intercept: which
// traffic a tunneler takes over (protocols, addresses, ports, sources,
// interfaces) and which TPROXY listener receives it. It validates
// intercepts, puts them in a canonical form, expands them into dataplane
// rules, and diffs sets of them.
package intercept

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/zfw-go/zfw/internal/policy"
)

// Protocol is a transport protocol an intercept covers.
type Protocol string

// Protocols.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// PortRange is an inclusive destination port range.
type PortRange struct{ Low, High uint16 }

func (r PortRange) String() string {
	if r.Low == r.High {
		return fmt.Sprint(r.Low)
	}
	return fmt.Sprintf("%d-%d", r.Low, r.High)
}

// Intercept is one service's intercept.
type Intercept struct {
	// ServiceID identifies the service; at most policy.MaxServiceIDLen
	// (32) bytes of printable ASCII without spaces.
	ServiceID string
	// ServiceName is informational; at most 63 bytes.
	ServiceName string
	// Protocols covered: TCP and/or UDP.
	Protocols []Protocol
	// Addresses intercepted, IPv4 and/or IPv6; a host is a /32 or /128.
	// Prefixes need not be masked (10.0.0.5/24 means 10.0.0.0/24).
	Addresses []netip.Prefix
	// Ports are destination port ranges, 1-65535.
	Ports []PortRange
	// SourcePrefixes, if any, limit the intercept to clients inside one
	// of them. An address is paired only with sources of its own family;
	// an address family with no source listed is not intercepted at all.
	SourcePrefixes []netip.Prefix
	// Interfaces, if any, limit the intercept to these interfaces.
	Interfaces []string
	// TProxyPort is the port of the listener on 127.0.0.1 (IPv4) and
	// [::1] (IPv6) that receives the flows.
	TProxyPort uint16
}

// FieldError is a validation failure: which intercept, which field, and
// why.
type FieldError struct {
	ServiceID string
	// Field names the field, with an index for list elements
	// ("ports[1]").
	Field  string
	Value  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("intercept %q: %s %s: %s", e.ServiceID, e.Field, e.Value, e.Reason)
	}
	return fmt.Sprintf("intercept %q: %s: %s", e.ServiceID, e.Field, e.Reason)
}

// Validate reports the first problem found, as a *FieldError.
func (ic Intercept) Validate() error {
	bad := func(field, value, reason string, args ...any) error {
		return &FieldError{ServiceID: ic.ServiceID, Field: field, Value: value, Reason: fmt.Sprintf(reason, args...)}
	}
	switch {
	case ic.ServiceID == "":
		return bad("service id", "", "required")
	case len(ic.ServiceID) > policy.MaxServiceIDLen:
		return bad("service id", "", "is %d bytes, at most %d", len(ic.ServiceID), policy.MaxServiceIDLen)
	}
	for _, c := range []byte(ic.ServiceID) {
		if c <= ' ' || c >= 0x7f {
			return bad("service id", "", "byte %#x is not printable ASCII", c)
		}
	}
	if len(ic.ServiceName) > policy.MaxServiceNameLen {
		return bad("service name", "", "is %d bytes, at most %d", len(ic.ServiceName), policy.MaxServiceNameLen)
	}
	if len(ic.Protocols) == 0 {
		return bad("protocols", "", "at least one of tcp, udp required")
	}
	for i, p := range ic.Protocols {
		if p != TCP && p != UDP {
			return bad(fmt.Sprintf("protocols[%d]", i), string(p), "unknown protocol (tcp or udp)")
		}
	}
	if len(ic.Addresses) == 0 {
		return bad("addresses", "", "at least one prefix required")
	}
	for i, a := range ic.Addresses {
		if !a.IsValid() {
			return bad(fmt.Sprintf("addresses[%d]", i), a.String(), "not a valid prefix")
		}
		if a.Addr().Is4In6() {
			return bad(fmt.Sprintf("addresses[%d]", i), a.String(), "IPv4-mapped IPv6; give the IPv4 prefix")
		}
	}
	if len(ic.Ports) == 0 {
		return bad("ports", "", "at least one range required")
	}
	for i, r := range ic.Ports {
		field := fmt.Sprintf("ports[%d]", i)
		if r.Low == 0 {
			return bad(field, r.String(), "low port 0 (ports are 1-65535)")
		}
		if r.Low > r.High {
			return bad(field, "", "low %d > high %d", r.Low, r.High)
		}
	}
	for i, s := range ic.SourcePrefixes {
		if !s.IsValid() {
			return bad(fmt.Sprintf("source prefixes[%d]", i), s.String(), "not a valid prefix")
		}
	}
	if len(ic.Interfaces) > policy.MaxRuleInterfaces {
		return bad("interfaces", "", "%d listed, at most %d", len(ic.Interfaces), policy.MaxRuleInterfaces)
	}
	for i, name := range ic.Interfaces {
		if err := validIfname(name); err != nil {
			return bad(fmt.Sprintf("interfaces[%d]", i), fmt.Sprintf("%q", name), "%v", err)
		}
	}
	if ic.TProxyPort == 0 {
		return bad("tproxy port", "", "required (1-65535)")
	}
	return nil
}

func validIfname(name string) error {
	if name == "" || len(name) > 15 {
		return errors.New("must be 1 to 15 bytes")
	}
	for _, c := range []byte(name) {
		if c == '/' || c <= ' ' || c >= 0x7f {
			return fmt.Errorf("byte %#x not allowed", c)
		}
	}
	return nil
}

// Normalize returns the canonical form: prefixes masked, every list
// sorted and without duplicates. Equal intercepts normalise identically.
func (ic Intercept) Normalize() Intercept {
	out := ic
	out.Protocols = sortedUnique(ic.Protocols, func(a, b Protocol) int { return cmp.Compare(a, b) })
	out.Addresses = sortedUnique(masked(ic.Addresses), comparePrefix)
	out.Ports = sortedUnique(ic.Ports, func(a, b PortRange) int {
		return cmp.Or(cmp.Compare(a.Low, b.Low), cmp.Compare(a.High, b.High))
	})
	out.SourcePrefixes = sortedUnique(masked(ic.SourcePrefixes), comparePrefix)
	out.Interfaces = sortedUnique(ic.Interfaces, cmp.Compare[string])
	return out
}

// Equal reports whether two intercepts are the same once normalised.
func (ic Intercept) Equal(o Intercept) bool {
	a, b := ic.Normalize(), o.Normalize()
	return a.ServiceID == b.ServiceID && a.ServiceName == b.ServiceName &&
		a.TProxyPort == b.TProxyPort &&
		slices.Equal(a.Protocols, b.Protocols) && slices.Equal(a.Addresses, b.Addresses) &&
		slices.Equal(a.Ports, b.Ports) && slices.Equal(a.SourcePrefixes, b.SourcePrefixes) &&
		slices.Equal(a.Interfaces, b.Interfaces)
}

// Rules expands the intercept into dataplane rules, one per protocol ×
// address × port range × source prefix of the address's family, in the
// canonical order. ifindex resolves interface names. ID and Seq are left
// for the firewall to assign.
func (ic Intercept) Rules(ifindex func(name string) (int, error)) ([]policy.Rule, error) {
	if err := ic.Validate(); err != nil {
		return nil, err
	}
	n := ic.Normalize()
	var ifs []int
	for _, name := range n.Interfaces {
		if ifindex == nil {
			return nil, fmt.Errorf("intercept %q: interface %s: no resolver", ic.ServiceID, name)
		}
		idx, err := ifindex(name)
		if err != nil {
			return nil, fmt.Errorf("intercept %q: interface %s: %w", ic.ServiceID, name, err)
		}
		ifs = append(ifs, idx)
	}
	var out []policy.Rule
	for _, p := range n.Protocols {
		proto := policy.ProtoTCP
		if p == UDP {
			proto = policy.ProtoUDP
		}
		for _, dst := range n.Addresses {
			sources := []netip.Prefix{{}}
			if len(n.SourcePrefixes) > 0 {
				sources = sources[:0]
				for _, s := range n.SourcePrefixes {
					if s.Addr().Is4() == dst.Addr().Is4() {
						sources = append(sources, s)
					}
				}
			}
			for _, pr := range n.Ports {
				for _, src := range sources {
					if src.IsValid() && src.Bits() == 0 {
						src = netip.Prefix{} // any source of the family
					}
					out = append(out, policy.Rule{
						ServiceID: n.ServiceID, ServiceName: n.ServiceName,
						Proto: proto, Dst: dst, Src: src,
						PortLow: pr.Low, PortHigh: pr.High,
						Action: policy.ActionTProxy, TProxyPort: n.TProxyPort,
						Interfaces: slices.Clone(ifs),
					})
				}
			}
		}
	}
	return out, nil
}

// Change is one service's difference between two sets.
type Change struct {
	// Old is nil for an added service; New is nil for a removed one.
	Old, New *Intercept
}

// Diff compares the current intercepts with the desired ones by service
// id. Unchanged services (Equal) appear in no list. A service id listed
// twice in desired is an error.
func Diff(current, desired []Intercept) ([]Change, error) {
	cur := make(map[string]*Intercept, len(current))
	for i := range current {
		cur[current[i].ServiceID] = &current[i]
	}
	seen := make(map[string]bool, len(desired))
	var out []Change
	for i := range desired {
		d := &desired[i]
		if seen[d.ServiceID] {
			return nil, &FieldError{ServiceID: d.ServiceID, Field: "service id", Reason: "listed twice"}
		}
		seen[d.ServiceID] = true
		if c := cur[d.ServiceID]; c == nil {
			out = append(out, Change{New: d})
		} else if !c.Equal(*d) {
			out = append(out, Change{Old: c, New: d})
		}
	}
	for i := range current {
		if !seen[current[i].ServiceID] {
			out = append(out, Change{Old: &current[i]})
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return cmp.Compare(changeID(a), changeID(b)) })
	return out, nil
}

func changeID(c Change) string {
	if c.New != nil {
		return c.New.ServiceID
	}
	return c.Old.ServiceID
}

func masked(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = p.Masked()
	}
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

func sortedUnique[T any](in []T, compare func(a, b T) int) []T {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.SortFunc(out, compare)
	return slices.CompactFunc(out, func(a, b T) bool { return compare(a, b) == 0 })
}
