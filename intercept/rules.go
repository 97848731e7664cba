package intercept

import (
	"fmt"
	"math"
	"net/netip"
	"slices"

	"github.com/zfw-go/zfw/internal/policy"
)

// Rules expands the intercept into the dataplane's rules: one per
// protocol × address × port range × source prefix, where an address pairs
// only with the source prefixes of its own family. Without source
// prefixes every address pairs once with "any source". With source
// prefixes, an address whose family has none yields no rules (its clients
// are not in the allowed list), so Rules may return no rules at all.
//
// Every rule has Action policy.ActionTProxy, the intercept's TProxyPort,
// ServiceID and ServiceName, a masked Dst, and a masked Src; Src is the
// zero Prefix, meaning any source, when there are no source prefixes or
// the source prefix is 0.0.0.0/0 or ::/0. ID, Seq and Intercept are left
// zero for the firewall to set.
//
// ifindex resolves each distinct interface name to its index, which must
// be positive; every rule gets the sorted, distinct indexes in a slice of
// its own. ifindex is not called, and may be nil, when the intercept lists
// no interfaces. A failed resolution returns an error that names the
// service and the interface and wraps the resolver's error.
//
// The rules come in the canonical order of Normalize, protocol first and
// source prefix last, so equal intercepts expand identically. An invalid
// intercept returns Validate's error and no rules.
func (i Intercept) Rules(ifindex func(name string) (int, error)) ([]policy.Rule, error) {
	if err := i.Validate(); err != nil {
		return nil, err
	}
	n := i.Normalize()

	ifs, err := n.resolveInterfaces(ifindex)
	if err != nil {
		return nil, err
	}

	sources := n.sourcesByFamily()
	count := n.ruleCount(sources)
	if count > maxRulesPerIntercept {
		return nil, fmt.Errorf("intercept %q: expands to %s rules, at most %d", n.ServiceID, countText(count), maxRulesPerIntercept)
	}
	rules := make([]policy.Rule, 0, count)
	// One backing array for every rule's Interfaces, cut so that no rule
	// can reach another's. count*len(ifs) fits: len(ifs) is at most
	// policy.MaxRuleInterfaces.
	var ifBacking []int
	if len(ifs) > 0 {
		ifBacking = make([]int, count*len(ifs))
	}

	for _, p := range n.Protocols {
		proto := policy.ProtoTCP
		if p == UDP {
			proto = policy.ProtoUDP
		}
		for _, dst := range n.Addresses {
			for _, ports := range n.Ports {
				for _, src := range sources[family(dst)] {
					r := policy.Rule{
						ServiceID:   n.ServiceID,
						ServiceName: n.ServiceName,
						Proto:       proto,
						Dst:         dst,
						Src:         src,
						PortLow:     ports.Low,
						PortHigh:    ports.High,
						Action:      policy.ActionTProxy,
						TProxyPort:  n.TProxyPort,
					}
					if len(ifs) > 0 {
						lo := len(rules) * len(ifs)
						hi := lo + len(ifs)
						r.Interfaces = ifBacking[lo:hi:hi]
						copy(r.Interfaces, ifs)
					}
					rules = append(rules, r)
				}
			}
		}
	}
	return rules, nil
}

// RuleCount returns how many rules Rules would return, without building
// them or resolving interfaces: 0 for an invalid intercept, and
// math.MaxInt when the number does not fit in an int. Rules allocates
// that many rules, so a caller with a fixed capacity can check it first.
func (i Intercept) RuleCount() int {
	if i.Validate() != nil {
		return 0
	}
	n := i.Normalize()
	return n.ruleCount(n.sourcesByFamily())
}

// maxRulesPerIntercept bounds an expansion: rule ids are uint32, so no
// firewall holds more rules than that, and the count times the number of
// interfaces must fit in an int.
const maxRulesPerIntercept = min(math.MaxUint32, math.MaxInt/policy.MaxRuleInterfaces)

// sourcesByFamily returns the source prefixes of a normalised intercept
// that each address family pairs with, IPv4 at index 0 and IPv6 at index
// 1. Any source, from no source prefixes or a /0, is the zero Prefix.
func (i Intercept) sourcesByFamily() [2][]netip.Prefix {
	var sources [2][]netip.Prefix
	if len(i.SourcePrefixes) == 0 {
		sources[0] = []netip.Prefix{{}}
		sources[1] = []netip.Prefix{{}}
		return sources
	}
	for _, s := range i.SourcePrefixes {
		f := family(s)
		if s.Bits() == 0 {
			s = netip.Prefix{} // every client of the family
		}
		sources[f] = append(sources[f], s)
	}
	return sources
}

// ruleCount returns how many rules a normalised, valid intercept expands
// to with these sources, saturating at math.MaxInt.
func (i Intercept) ruleCount(sources [2][]netip.Prefix) int {
	perSource := mulSat(len(i.Protocols), len(i.Ports))
	count := 0
	for _, dst := range i.Addresses {
		count = addSat(count, mulSat(perSource, len(sources[family(dst)])))
	}
	return count
}

// countText formats a rule count, saturated counts as "more than".
func countText(n int) string {
	if n == math.MaxInt {
		return fmt.Sprintf("more than %d", n)
	}
	return fmt.Sprint(n)
}

func mulSat(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt/b {
		return math.MaxInt
	}
	return a * b
}

func addSat(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

// resolveInterfaces returns the sorted, distinct indexes of the
// intercept's interfaces, which must already be normalised.
func (i Intercept) resolveInterfaces(ifindex func(name string) (int, error)) ([]int, error) {
	if len(i.Interfaces) == 0 {
		return nil, nil
	}
	if ifindex == nil {
		return nil, fmt.Errorf("intercept %q: interface %q: no resolver for interface names", i.ServiceID, i.Interfaces[0])
	}
	ifs := make([]int, 0, len(i.Interfaces))
	for _, name := range i.Interfaces {
		idx, err := ifindex(name)
		if err != nil {
			return nil, fmt.Errorf("intercept %q: interface %q: %w", i.ServiceID, name, err)
		}
		if idx <= 0 {
			return nil, fmt.Errorf("intercept %q: interface %q: resolved to index %d; interface indexes are positive", i.ServiceID, name, idx)
		}
		ifs = append(ifs, idx)
	}
	slices.Sort(ifs)
	return slices.Compact(ifs), nil
}

// family returns 0 for an IPv4 prefix and 1 for an IPv6 one. It is only
// used on valid prefixes.
func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 0
	}
	return 1
}
