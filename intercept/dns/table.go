package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"
)

// table is the state behind Server: which names are owned, by whom, with
// which address, and which wildcards may add names at query time.
//
// The mutex is never held while an onAllocate callback runs. A name whose
// callbacks are running is marked pending; a query for it waits (on settled)
// until they are done, so the answer never leaves before every callback has
// returned.
type table struct {
	log logrus.FieldLogger

	mu        sync.Mutex
	settled   sync.Cond // signalled when a pending name settles
	alloc     *Allocator
	names     map[string]*nameEntry
	addrs     map[netip.Addr]string
	wildcards map[string]map[string]*registration // suffix → owner → registration
	held      map[netip.Addr]int                  // addresses kept for registrations after a failed allocation
	waiting   int                                 // queries waiting for a pending name to settle
}

// nameEntry is one name with an address.
type nameEntry struct {
	addr    netip.Addr
	hosts   map[string]struct{}        // owners that added the name with AddHostname
	claims  map[*registration]struct{} // wildcard registrations whose onAllocate accepted the name
	pending bool                       // onAllocate callbacks for the name are running
}

func (e *nameEntry) unused() bool {
	return !e.pending && len(e.hosts) == 0 && len(e.claims) == 0
}

// registration is one owner's wildcard.
type registration struct {
	owner      string
	suffix     string // "example.com" for "*.example.com"
	onAllocate func(name string, addr netip.Addr) error

	names   map[string]struct{} // names this registration claims
	held    []netip.Addr        // addresses kept for it after failed allocations
	removed bool                // set by RemoveWildcard; a running onAllocate's result is then ignored
}

func newTable(alloc *Allocator, log logrus.FieldLogger) *table {
	t := &table{
		log:       log,
		alloc:     alloc,
		names:     make(map[string]*nameEntry),
		addrs:     make(map[netip.Addr]string),
		wildcards: make(map[string]map[string]*registration),
		held:      make(map[netip.Addr]int),
	}
	t.settled.L = &t.mu
	return t
}

// canonicalName returns name lower-cased and without its trailing dot, or an
// error if it is not a host name (empty, malformed, a wildcard, or an IP
// address literal).
func canonicalName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if n == "" {
		return "", errors.New("dns: empty host name")
	}
	if strings.ContainsAny(n, "* \t\\") {
		return "", fmt.Errorf("dns: %q is not a host name", name)
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return "", fmt.Errorf("dns: %q is an IP address, not a host name", name)
	}
	if _, ok := dns.IsDomainName(n); !ok || strings.HasPrefix(n, ".") || strings.Contains(n, "..") {
		return "", fmt.Errorf("dns: %q is not a valid host name", name)
	}
	return n, nil
}

// canonicalWildcard returns the suffix a wildcard pattern matches: "example.com"
// for "*.example.com" (any case, with or without the trailing dot).
func canonicalWildcard(pattern string) (string, error) {
	rest, ok := strings.CutPrefix(pattern, "*.")
	if !ok {
		return "", fmt.Errorf("dns: wildcard %q does not start with \"*.\"", pattern)
	}
	suffix, err := canonicalName(rest)
	if err != nil {
		return "", fmt.Errorf("dns: wildcard %q: %w", pattern, err)
	}
	return suffix, nil
}

// addHostname implements Server.AddHostname.
func (t *table) addHostname(owner, name string) (netip.Addr, error) {
	n, err := canonicalName(name)
	if err != nil {
		return netip.Addr{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.names[n]
	if e == nil {
		if e, err = t.newEntry(n); err != nil {
			return netip.Addr{}, fmt.Errorf("dns: host name %s: %w", n, err)
		}
		t.log.WithFields(logrus.Fields{"name": n, "addr": e.addr, "owner": owner}).Info("dns: host name added")
	}
	e.hosts[owner] = struct{}{}
	return e.addr, nil
}

// removeHostname implements Server.RemoveHostname.
func (t *table) removeHostname(owner, name string) {
	n, err := canonicalName(name)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.names[n]
	if e == nil {
		return
	}
	delete(e.hosts, owner)
	t.releaseIfUnused(n, e)
}

// addWildcard implements Server.AddWildcard.
func (t *table) addWildcard(owner, pattern string, onAllocate func(string, netip.Addr) error) error {
	suffix, err := canonicalWildcard(pattern)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	byOwner := t.wildcards[suffix]
	if byOwner == nil {
		byOwner = make(map[string]*registration)
		t.wildcards[suffix] = byOwner
	}
	if r := byOwner[owner]; r != nil {
		r.onAllocate = onAllocate
		return nil
	}
	byOwner[owner] = &registration{
		owner:      owner,
		suffix:     suffix,
		onAllocate: onAllocate,
		names:      make(map[string]struct{}),
	}
	t.log.WithFields(logrus.Fields{"wildcard": "*." + suffix, "owner": owner}).Info("dns: wildcard added")
	return nil
}

// removeWildcard implements Server.RemoveWildcard.
func (t *table) removeWildcard(owner, pattern string) {
	suffix, err := canonicalWildcard(pattern)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.wildcards[suffix][owner]
	if r == nil {
		return
	}
	delete(t.wildcards[suffix], owner)
	if len(t.wildcards[suffix]) == 0 {
		delete(t.wildcards, suffix)
	}
	// An onAllocate of r may be running: RemoveWildcard must not wait for
	// it, since its owner may hold a lock the callback needs. Marked
	// removed, r gains no claim when the callback returns.
	r.removed = true
	for n := range r.names {
		if e := t.names[n]; e != nil {
			delete(e.claims, r)
			t.releaseIfUnused(n, e)
		}
	}
	for _, addr := range r.held {
		t.unhold(addr)
	}
	t.log.WithFields(logrus.Fields{"wildcard": "*." + suffix, "owner": owner, "names": len(r.names)}).Info("dns: wildcard removed")
}

// lookup implements Server.Lookup.
func (t *table) lookup(addr netip.Addr) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.addrs[addr.Unmap()]
	return n, ok
}

// owns reports whether n (canonical) is a name the table answers for: one
// with an address, or one a wildcard matches.
func (t *table) owns(n string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.names[n] != nil || len(t.matching(n)) > 0
}

// errNotOwned is returned by resolve for a name nobody owns.
var errNotOwned = errors.New("dns: name not owned")

// resolve returns the address of n (canonical), allocating one if a wildcard
// matches it. Every matching wildcard registration that has not yet accepted
// n has its onAllocate called first; resolve returns only after they all have
// returned. It returns errNotOwned for a name nobody owns.
func (t *table) resolve(n string) (netip.Addr, error) {
	t.mu.Lock()
	e := t.names[n]
	for e != nil && e.pending {
		t.waiting++
		t.settled.Wait()
		t.waiting--
		e = t.names[n]
	}
	regs := t.matching(n)
	if e == nil && len(regs) == 0 {
		t.mu.Unlock()
		return netip.Addr{}, errNotOwned
	}
	var todo []*registration
	for _, r := range regs {
		if e == nil {
			todo = append(todo, r)
		} else if _, ok := e.claims[r]; !ok {
			todo = append(todo, r)
		}
	}
	if len(todo) == 0 {
		addr := e.addr
		t.mu.Unlock()
		return addr, nil
	}
	fresh := e == nil
	if fresh {
		var err error
		if e, err = t.newEntry(n); err != nil {
			t.mu.Unlock()
			return netip.Addr{}, fmt.Errorf("dns: %s: %w", n, err)
		}
	}
	e.pending = true
	callbacks := make([]func(string, netip.Addr) error, len(todo))
	for i, r := range todo {
		callbacks[i] = r.onAllocate
	}
	addr := e.addr
	t.mu.Unlock()

	// Run the callbacks without the lock, so that they may call any
	// method, and each owner's lock may be taken in them.
	errs := make([]error, len(callbacks))
	for i, cb := range callbacks {
		if cb != nil {
			errs[i] = cb(n, addr)
		}
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.settled.Broadcast()
	e.pending = false
	// Owners that went away meanwhile neither claim the name nor fail
	// the query (their callback may well have refused because they were
	// going).
	var keepers []*registration
	var failures []error
	for i, r := range todo {
		switch {
		case r.removed:
		case errs[i] != nil:
			failures = append(failures, fmt.Errorf("wildcard *.%s of %q refused %s: %w", r.suffix, r.owner, addr, errs[i]))
		default:
			keepers = append(keepers, r)
		}
	}
	var failure error
	if len(failures) > 0 {
		failure = fmt.Errorf("dns: %s: %w", n, errors.Join(failures...))
	}
	if failure != nil && fresh && len(e.hosts) == 0 && len(e.claims) == 0 {
		// The name dies with the failed query. Owners whose callback
		// accepted the address may already intercept it, so it is
		// not recycled until they are gone.
		delete(t.names, n)
		delete(t.addrs, addr)
		if len(keepers) == 0 {
			t.alloc.Release(addr)
		} else {
			t.held[addr] += len(keepers)
			for _, r := range keepers {
				r.held = append(r.held, addr)
			}
		}
		return netip.Addr{}, failure
	}
	for _, r := range keepers {
		e.claims[r] = struct{}{}
		r.names[n] = struct{}{}
	}
	if fresh && failure == nil {
		t.log.WithFields(logrus.Fields{"name": n, "addr": addr}).Info("dns: wildcard name allocated")
	}
	t.releaseIfUnused(n, e)
	if failure != nil {
		return netip.Addr{}, failure
	}
	if t.names[n] != e {
		// Every owner went away while the callbacks ran.
		return netip.Addr{}, errNotOwned
	}
	return addr, nil
}

// matching returns the live registrations whose wildcard matches n, the most
// specific suffix first and, within one suffix, by owner. The caller holds mu.
func (t *table) matching(n string) []*registration {
	var regs []*registration
	for i := strings.IndexByte(n, '.'); i >= 0; {
		suffix := n[i+1:]
		if byOwner := t.wildcards[suffix]; len(byOwner) > 0 {
			start := len(regs)
			for _, r := range byOwner {
				regs = append(regs, r)
			}
			slices.SortFunc(regs[start:], func(a, b *registration) int { return strings.Compare(a.owner, b.owner) })
		}
		j := strings.IndexByte(suffix, '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return regs
}

// newEntry allocates an address for n and records it. The caller holds mu.
func (t *table) newEntry(n string) (*nameEntry, error) {
	addr, err := t.alloc.Allocate()
	if err != nil {
		return nil, err
	}
	e := &nameEntry{
		addr:   addr,
		hosts:  make(map[string]struct{}),
		claims: make(map[*registration]struct{}),
	}
	t.names[n] = e
	t.addrs[addr] = n
	return e, nil
}

// releaseIfUnused forgets n and releases its address once nobody owns it.
// The caller holds mu.
func (t *table) releaseIfUnused(n string, e *nameEntry) {
	if !e.unused() || t.names[n] != e {
		return
	}
	delete(t.names, n)
	delete(t.addrs, e.addr)
	t.alloc.Release(e.addr)
	t.log.WithFields(logrus.Fields{"name": n, "addr": e.addr}).Info("dns: name released")
}

// unhold drops one registration's hold on addr, releasing it with the last.
// The caller holds mu.
func (t *table) unhold(addr netip.Addr) {
	t.held[addr]--
	if t.held[addr] <= 0 {
		delete(t.held, addr)
		t.alloc.Release(addr)
	}
}
