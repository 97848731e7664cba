package control

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/conntrack"
	"github.com/zfw-go/zfw/zfw/event"
)

// Controller runs the zfw command's rule operations: Local runs them on
// a Firewall in this process, Client through a control socket.
type Controller interface {
	// Insert installs r. A rule with r's match (Find) that does the same
	// (action, listener, service id) and applies on the same interfaces
	// makes Insert a no-op; one that differs is replaced by r in one step.
	// When both name interfaces the result applies on all of them, so a
	// router that inserts a rule once per interface gets one rule for
	// all; an r naming none applies everywhere, as in the C zfw.
	Insert(ctx context.Context, r Rule) (Change, error)
	// Delete removes the rules with m's destination, source, protocol and
	// ports. If m names interfaces, a rule limited to interfaces loses
	// those (and goes when none is left); one that applies on all goes.
	// With no such rule the error wraps zfw.ErrNotFound.
	Delete(ctx context.Context, m Match) (Change, error)
	// List returns every installed rule, intercepts included, and how
	// full the maps are.
	List(ctx context.Context) (Listing, error)
	// Flush removes every rule of direction d (both for BothDirections)
	// added through the rules API, all or none; the intercepts the owner
	// registered stay.
	Flush(ctx context.Context, d Direction) error
	// Interfaces lists the interfaces the dataplane manages, with their
	// settings, sorted by name.
	Interfaces(ctx context.Context) ([]zfw.Interface, error)
	// SetInterface turns setting (one of Settings) on or off on the
	// managed interface name, or on every one for AllInterfaces, live.
	// An interface the dataplane does not manage is an error wrapping
	// zfw.ErrNotFound.
	SetInterface(ctx context.Context, name, setting string, on bool) error
	// Members lists one of the dataplane's lists (ListDDoSPorts, ...),
	// each member as text.
	Members(ctx context.Context, list string) ([]string, error)
	// SetMember adds member to list (on) or removes it; removing what
	// is not there changes nothing. ListDDoSBans only loses members
	// (the ban is lifted).
	SetMember(ctx context.Context, list, member string, on bool) error
	// Sessions lists the sessions the dataplane tracks, expired ones
	// included until they are collected.
	Sessions(ctx context.Context) ([]conntrack.Session, error)
	// Attach puts the dataplane on interface name (AllInterfaces: every
	// interface of the owner's namespace but the Ziti tun), with default
	// settings; an interface it manages stays as it is. Detach takes it
	// off one (or every managed one). SetTunnel makes name the Ziti tun
	// of tunnel mode ("" turns it off). A RulesOnly Firewall refuses all
	// three: attaching belongs to the dataplane's owner.
	Attach(ctx context.Context, name string) error
	Detach(ctx context.Context, name string) error
	SetTunnel(ctx context.Context, name string) error
	// Monitor delivers the dataplane's events of interface iface (or
	// AllInterfaces) until ctx ends or the dataplane's owner stops; then
	// the channel closes.
	Monitor(ctx context.Context, iface string) (<-chan event.Event, error)
	// Version is the version of the program that runs the operations.
	Version(ctx context.Context) (string, error)
}

// Change says what an operation did.
type Change string

// Changes.
const (
	Added     Change = "added"
	Updated   Change = "updated"
	Unchanged Change = "unchanged"
	Removed   Change = "removed"
)

// Listing is the answer to List.
type Listing struct {
	Rules []zfw.RuleInfo `json:"rules"`
	Usage zfw.Usage      `json:"usage"`
}

// Local runs the operations on a Firewall of this process.
type Local struct {
	fw *zfw.Firewall
	mu sync.Mutex // makes each find-then-change one step for our callers
}

// NewLocal returns a Controller over fw.
func NewLocal(fw *zfw.Firewall) *Local { return &Local{fw: fw} }

// Insert implements Controller.
func (l *Local) Insert(ctx context.Context, r Rule) (Change, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	want := r.FirewallRule()
	found := l.fw.Rules().Find(want)
	if len(found) == 0 {
		if _, err := l.fw.Rules().Add(ctx, want); err != nil {
			return "", fmt.Errorf("insert %s: %w", r.Match, err)
		}
		return Added, nil
	}
	have := found[0]
	if sameEffect(have, want) && len(want.Interfaces) > 0 && len(have.Interfaces) > 0 {
		want.Interfaces = union(have.Interfaces, want.Interfaces)
	}
	if sameEffect(have, want) && sameSet(have.Interfaces, want.Interfaces) {
		return Unchanged, nil
	}
	if _, err := l.fw.Rules().Replace(ctx, have.ID, want); err != nil {
		return "", fmt.Errorf("insert %s: %w", r.Match, err)
	}
	return Updated, nil
}

// Delete implements Controller.
func (l *Local) Delete(ctx context.Context, m Match) (Change, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var (
		change  Change
		matched bool
	)
	for _, have := range l.fw.Rules().Find(Rule{Match: m}.FirewallRule()) {
		rest := slices.DeleteFunc(slices.Clone(have.Interfaces), func(s string) bool { return slices.Contains(m.Interfaces, s) })
		switch {
		case len(m.Interfaces) == 0 || len(have.Interfaces) == 0 || len(rest) == 0:
			if err := l.fw.Rules().Delete(ctx, have.ID); err != nil {
				return change, fmt.Errorf("delete %s: %w", m, err)
			}
			matched, change = true, Removed
		case len(have.Interfaces)-len(rest) == len(m.Interfaces):
			r := ruleOf(have)
			r.Interfaces = rest
			if _, err := l.fw.Rules().Replace(ctx, have.ID, r); err != nil {
				return change, fmt.Errorf("delete %s: %w", m, err)
			}
			matched = true
			if change == "" {
				change = Updated
			}
		}
	}
	if !matched {
		return "", fmt.Errorf("delete %s: no such rule: %w", m, zfw.ErrNotFound)
	}
	return change, nil
}

// ruleOf is the rule that installs ri again.
func ruleOf(ri zfw.RuleInfo) zfw.Rule {
	return zfw.Rule{
		Action: ri.Action, Protocol: ri.Protocol,
		Destination: ri.Destination, Source: ri.Source, Ports: ri.Ports,
		TProxyPort: ri.TProxyPort, ServiceID: ri.ServiceID,
		Interfaces: ri.Interfaces, Egress: ri.Egress,
	}
}

// List implements Controller.
func (l *Local) List(ctx context.Context) (Listing, error) {
	if err := ctx.Err(); err != nil {
		return Listing{}, err
	}
	return Listing{Rules: l.fw.Rules().List(), Usage: l.fw.Usage()}, nil
}

// Flush implements Controller.
func (l *Local) Flush(ctx context.Context, d Direction) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := d.check(); err != nil {
		return err
	}
	if d == BothDirections {
		if err := l.fw.Rules().Flush(ctx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		return nil
	}
	var ids []uint32
	for _, r := range l.fw.Rules().List() {
		if !r.Intercept && d.holds(r.Egress) {
			ids = append(ids, r.ID)
		}
	}
	if err := l.fw.Rules().Delete(ctx, ids...); err != nil {
		return fmt.Errorf("flush %s: %w", d, err)
	}
	return nil
}

// Interfaces implements Controller.
func (l *Local) Interfaces(ctx context.Context) ([]zfw.Interface, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return l.fw.Interfaces(), nil
}

// SetInterface implements Controller.
func (l *Local) SetInterface(ctx context.Context, name, setting string, on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	found := false
	for _, ifc := range l.fw.Interfaces() {
		if name != AllInterfaces && ifc.Name != name {
			continue
		}
		found = true
		s := ifc.InterfaceSettings
		if err := ApplySetting(&s, setting, on); err != nil {
			return err
		}
		if err := l.fw.SetInterface(ctx, ifc.Name, s); err != nil {
			return fmt.Errorf("%s %s: %w", setting, ifc.Name, err)
		}
	}
	if !found {
		return fmt.Errorf("%s %s: not an interface the dataplane manages: %w", setting, name, zfw.ErrNotFound)
	}
	return nil
}

// Version implements Controller.
func (l *Local) Version(ctx context.Context) (string, error) {
	return BuildVersion(), ctx.Err()
}
