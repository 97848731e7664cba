package zfw

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/policy"
)

// Action is what a rule does with the packets it matches.
type Action uint8

// Actions.
const (
	// Pass hands matching packets to the host stack.
	Pass Action = 1
	// Deny drops matching packets.
	Deny Action = 2
	// TProxy steers matching packets to the listener at TProxyPort.
	TProxy Action = 3
)

// String returns the action's name as listings show it: pass, deny,
// tproxy.
func (a Action) String() string { return policy.Action(a).String() }

// Rule is a rule outside any intercept: a pass-through, a deny, or a
// TPROXY steer, optionally limited to sources and interfaces.
type Rule struct {
	Action   Action
	Protocol intercept.Protocol
	// Destination prefix; an address is a /32 or /128.
	Destination netip.Prefix
	// Source prefix; the zero Prefix matches any source.
	Source netip.Prefix
	Ports  intercept.PortRange
	// TProxyPort is the listener port of a TProxy rule.
	TProxyPort uint16
	// ServiceID optionally tags the rule (shown in listings).
	ServiceID string
	// Interfaces limits the rule to these interfaces; empty means all.
	Interfaces []string
	// Egress makes the rule decide new flows leaving an interface whose
	// outbound filter is on (Pass or Deny only); otherwise it decides
	// packets arriving.
	Egress bool
}

// RuleInfo is one installed rule as listings show it.
type RuleInfo struct {
	ID uint32
	// Order is the insertion order; among rules with equal prefixes the
	// lowest wins.
	Order       uint64
	Action      Action
	ServiceID   string
	ServiceName string
	// Intercept is true for rules made by Register or Sync.
	Intercept   bool
	Protocol    intercept.Protocol
	Source      netip.Prefix
	Destination netip.Prefix
	Ports       intercept.PortRange
	TProxyPort  uint16
	Interfaces  []string
	Egress      bool
	// Hits counts the decisions the rule made (flows, or datagrams of
	// flows that are not cached); zero in memory mode.
	Hits uint64
}

// Rules is the rules API: rules that are not intercepts.
type Rules struct{ f *Firewall }

// Rules returns the rules API.
func (f *Firewall) Rules() *Rules { return &Rules{f} }

// Add installs a rule and returns its id.
func (rs *Rules) Add(ctx context.Context, r Rule) (uint32, error) {
	f := rs.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(ctx); err != nil {
		return 0, err
	}
	pr, err := f.compileRule(r)
	if err != nil {
		return 0, fmt.Errorf("add rule: %w", err)
	}
	f.tbl.Assign([]*policy.Rule{pr})
	if err := f.change([]*policy.Rule{pr}, nil); err != nil {
		return 0, fmt.Errorf("add rule: %w", err)
	}
	return pr.ID, nil
}

// Delete removes rules added with Add, all of them or, on any error,
// none.
func (rs *Rules) Delete(ctx context.Context, ids ...uint32) error {
	f := rs.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(ctx); err != nil {
		return err
	}
	for _, id := range ids {
		if r := f.tbl.Rules[id]; r == nil || r.Intercept {
			return fmt.Errorf("delete rule %d: %w", id, ErrNotFound)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := f.change(nil, slices.Compact(slices.Sorted(slices.Values(ids)))); err != nil {
		return fmt.Errorf("delete %s: %w", ruleCount(ids), err)
	}
	return nil
}

// ruleCount names rules in messages: "rule 7", "3 rules".
func ruleCount(ids []uint32) string {
	if len(ids) == 1 {
		return fmt.Sprintf("rule %d", ids[0])
	}
	return fmt.Sprintf("%d rules", len(ids))
}

// Replace swaps the rule id, added with Add, for r in one all-or-nothing
// change and returns r's id: no packet meets neither rule.
func (rs *Rules) Replace(ctx context.Context, id uint32, r Rule) (uint32, error) {
	f := rs.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(ctx); err != nil {
		return 0, err
	}
	if old := f.tbl.Rules[id]; old == nil || old.Intercept {
		return 0, fmt.Errorf("replace rule %d: %w", id, ErrNotFound)
	}
	pr, err := f.compileRule(r)
	if err != nil {
		return 0, fmt.Errorf("replace rule %d: %w", id, err)
	}
	f.tbl.Assign([]*policy.Rule{pr})
	if err := f.change([]*policy.Rule{pr}, []uint32{id}); err != nil {
		return 0, fmt.Errorf("replace rule %d: %w", id, err)
	}
	return pr.ID, nil
}

// Find returns the rules added with Add that match what r matches:
// the same direction, protocol, destination and source prefixes (the
// zero source and 0.0.0.0/0 or ::/0 alike) and port range, whatever
// their action, listener, service id and interfaces. It reads no
// kernel state (Hits are zero), so it is cheap however many rules
// there are.
func (rs *Rules) Find(r Rule) []RuleInfo {
	proto, ok := protoNumber(r.Protocol)
	if !ok || !r.Destination.IsValid() {
		return nil
	}
	src := netip.Prefix{}
	if r.Source.IsValid() && r.Source.Bits() > 0 {
		src = r.Source.Masked()
	}
	f := rs.f
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []RuleInfo
	for _, id := range f.tbl.Block(policy.PrefixKey{Egress: r.Egress, Proto: proto, Prefix: r.Destination.Masked()}) {
		pr := f.tbl.Rules[id]
		if pr == nil || pr.Intercept || pr.Src != src || pr.PortLow != r.Ports.Low || pr.PortHigh != r.Ports.High {
			continue
		}
		out = append(out, f.info(pr, 0))
	}
	return out
}

// Flush removes every rule added with Add; intercepts stay.
func (rs *Rules) Flush(ctx context.Context) error {
	f := rs.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(ctx); err != nil {
		return err
	}
	var ids []uint32
	for id, r := range f.tbl.Rules {
		if !r.Intercept {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := f.change(nil, ids); err != nil {
		return fmt.Errorf("flush rules: %w", err)
	}
	return nil
}

// List returns every installed rule, intercepts included, in precedence
// order: family, protocol, longest destination prefix, longest source
// prefix, then insertion order.
func (rs *Rules) List() []RuleInfo {
	f := rs.f
	f.mu.Lock()
	defer f.mu.Unlock()
	hits := f.ruleHits()
	out := make([]RuleInfo, 0, len(f.tbl.Rules))
	for _, r := range f.tbl.Rules {
		out = append(out, f.info(r, hits[r.ID]))
	}
	slices.SortFunc(out, func(a, b RuleInfo) int {
		if a.Egress != b.Egress {
			if b.Egress {
				return -1
			}
			return 1
		}
		if a.Destination.Addr().Is4() != b.Destination.Addr().Is4() {
			if a.Destination.Addr().Is4() {
				return -1
			}
			return 1
		}
		return cmp.Or(
			cmp.Compare(a.Protocol, b.Protocol),
			cmp.Compare(b.Destination.Bits(), a.Destination.Bits()),
			a.Destination.Addr().Compare(b.Destination.Addr()),
			cmp.Compare(bitsOrZero(b.Source), bitsOrZero(a.Source)),
			cmp.Compare(a.Order, b.Order),
		)
	})
	return out
}

// info describes an installed rule. f.mu must be held.
func (f *Firewall) info(r *policy.Rule, hits uint64) RuleInfo {
	ri := RuleInfo{
		ID: r.ID, Order: r.Seq, Action: Action(r.Action),
		ServiceID: r.ServiceID, ServiceName: r.ServiceName, Intercept: r.Intercept,
		Protocol: protoOf(r.Proto), Source: r.Src, Destination: r.Dst,
		Ports: intercept.PortRange{Low: r.PortLow, High: r.PortHigh}, TProxyPort: r.TProxyPort,
		Egress: r.Egress, Hits: hits,
	}
	for _, ifx := range r.Interfaces {
		ri.Interfaces = append(ri.Interfaces, f.ifname(ifx))
	}
	return ri
}

func bitsOrZero(p netip.Prefix) int {
	if !p.IsValid() {
		return 0
	}
	return p.Bits()
}

// compileRule validates a user rule and turns it into a policy rule.
func (f *Firewall) compileRule(r Rule) (*policy.Rule, error) {
	proto, ok := protoNumber(r.Protocol)
	if !ok {
		return nil, fmt.Errorf("protocol %q: must be tcp or udp", r.Protocol)
	}
	switch r.Action {
	case Pass, Deny:
	case TProxy:
		if r.Egress {
			return nil, fmt.Errorf("action: egress rules pass or deny; TProxy applies to arriving packets")
		}
		if r.TProxyPort == 0 {
			return nil, fmt.Errorf("tproxy port: 0 is not a listener port (1-65535)")
		}
	default:
		return nil, fmt.Errorf("action %d: must be Pass, Deny or TProxy", r.Action)
	}
	// The checks intercept.Validate applies to the same fields, so that
	// every way in (Register, this API, the control socket, the CLI)
	// refuses the same input.
	if err := intercept.CheckPrefix(r.Destination); err != nil {
		return nil, fmt.Errorf("destination %s: %w", prefixText(r.Destination), err)
	}
	if r.Source.IsValid() {
		if err := intercept.CheckPrefix(r.Source); err != nil {
			return nil, fmt.Errorf("source %s: %w", r.Source, err)
		}
	}
	if r.Source.IsValid() && r.Source.Addr().Is4() != r.Destination.Addr().Is4() {
		return nil, fmt.Errorf("source %s: family differs from destination %s", r.Source, r.Destination)
	}
	if r.Ports.Low == 0 {
		return nil, fmt.Errorf("ports: low port 0 (ports are 1-65535)")
	}
	if r.Ports.Low > r.Ports.High {
		return nil, fmt.Errorf("ports: low %d > high %d", r.Ports.Low, r.Ports.High)
	}
	if err := intercept.CheckServiceID(r.ServiceID); err != nil {
		return nil, fmt.Errorf("service id %q: %w", r.ServiceID, err)
	}
	if len(r.Interfaces) > policy.MaxRuleInterfaces {
		return nil, fmt.Errorf("interfaces: %d listed, at most %d", len(r.Interfaces), policy.MaxRuleInterfaces)
	}
	for k, name := range r.Interfaces {
		if err := intercept.CheckInterfaceName(name); err != nil {
			return nil, fmt.Errorf("interfaces[%d] %q: %w", k, name, err)
		}
		if slices.Contains(r.Interfaces[:k], name) {
			return nil, fmt.Errorf("interfaces[%d] %q: listed twice", k, name)
		}
	}
	pr := &policy.Rule{
		ServiceID: r.ServiceID, Proto: proto,
		Dst: r.Destination.Masked(), PortLow: r.Ports.Low, PortHigh: r.Ports.High,
		Action: policy.Action(r.Action), Egress: r.Egress,
	}
	if r.Action == TProxy {
		pr.TProxyPort = r.TProxyPort
	}
	if r.Source.IsValid() && r.Source.Bits() > 0 {
		pr.Src = r.Source.Masked()
	}
	for _, name := range r.Interfaces {
		idx, err := f.ifindex(name)
		if err != nil {
			return nil, fmt.Errorf("interfaces: %w", err)
		}
		pr.Interfaces = append(pr.Interfaces, idx)
	}
	return pr, nil
}

// prefixText formats a prefix for an error; the zero Prefix, which has no
// text of its own, is "(none)".
func prefixText(p netip.Prefix) string {
	if !p.IsValid() {
		return "(none)"
	}
	return p.String()
}

func sortInterfaces(list []Interface) {
	slices.SortFunc(list, func(a, b Interface) int { return cmp.Compare(a.Name, b.Name) })
}

// ruleHits sums rule_hits_map over CPUs. f.mu must be held.
func (f *Firewall) ruleHits() map[uint32]uint64 {
	out := make(map[uint32]uint64)
	if f.dp == nil || f.closed {
		return out
	}
	var id uint32
	var per []uint64
	it := f.dp.Objects().RuleHitsMap.Iterate()
	for it.Next(&id, &per) {
		var sum uint64
		for _, n := range per {
			sum += n
		}
		out[id] = sum
	}
	if err := it.Err(); err != nil {
		f.log.WithError(err).Warn("read rule_hits_map")
	}
	return out
}
