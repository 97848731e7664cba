package ziti

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/openziti/edge-api/rest_model"
	zitisdk "github.com/openziti/sdk-golang/ziti"

	"github.com/zfw-go/zfw/intercept"
)

// recordingRegistrar passes calls to an inner Registrar (an in-memory
// firewall) and records them as "register <id> <port> <addresses>" and
// "unregister <id>".
type recordingRegistrar struct {
	inner Registrar

	mu    sync.Mutex
	calls []string
	fail  map[string]error // by service id
	// onCall, if set, runs for every call before it is recorded.
	onCall func(call string)
}

func (r *recordingRegistrar) Register(ctx context.Context, ic intercept.Intercept) error {
	call := fmt.Sprintf("register %s %d %v", ic.ServiceID, ic.TProxyPort, ic.Normalize().Addresses)
	if err := r.record(call, ic.ServiceID); err != nil {
		return err
	}
	if r.inner == nil {
		return nil
	}
	return r.inner.Register(ctx, ic)
}

func (r *recordingRegistrar) Unregister(ctx context.Context, id string) error {
	if err := r.record("unregister "+id, id); err != nil {
		return err
	}
	if r.inner == nil {
		return nil
	}
	return r.inner.Unregister(ctx, id)
}

func (r *recordingRegistrar) record(call, id string) error {
	r.mu.Lock()
	onCall, err := r.onCall, r.fail[id]
	r.mu.Unlock()
	if onCall != nil {
		onCall(call)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		return err
	}
	r.calls = append(r.calls, call)
	return nil
}

func (r *recordingRegistrar) failFor(id string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail == nil {
		r.fail = make(map[string]error)
	}
	r.fail[id] = err
}

// Calls returns the recorded calls and forgets them.
func (r *recordingRegistrar) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	r.calls = nil
	return calls
}

// fakeResolver allocates addresses from 100.64.0.2 on, ref-counted per
// owner, and answers queries for wildcard names the way a DNS server
// would: allocate, run the callbacks, answer.
type fakeResolver struct {
	mu        sync.Mutex
	last      netip.Addr
	hostnames map[string]*fakeName // by name
	byAddr    map[netip.Addr]string
	wildcards map[string]map[string]func(string, netip.Addr) error // pattern → owner → callback
	fail      map[string]error                                     // AddHostname failures by name
}

type fakeName struct {
	addr   netip.Addr
	owners map[string]int
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{
		last:      netip.MustParseAddr("100.64.0.1"),
		hostnames: make(map[string]*fakeName),
		byAddr:    make(map[netip.Addr]string),
		wildcards: make(map[string]map[string]func(string, netip.Addr) error),
		fail:      make(map[string]error),
	}
}

func (r *fakeResolver) AddHostname(owner, name string) (netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fail[name]; err != nil {
		return netip.Addr{}, err
	}
	return r.take(owner, name), nil
}

// take adds a reference from owner to name, allocating its address.
func (r *fakeResolver) take(owner, name string) netip.Addr {
	n := r.hostnames[name]
	if n == nil {
		r.last = r.last.Next()
		n = &fakeName{addr: r.last, owners: make(map[string]int)}
		r.hostnames[name] = n
		r.byAddr[n.addr] = name
	}
	n.owners[owner]++
	return n.addr
}

func (r *fakeResolver) RemoveHostname(owner, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drop(owner, name)
}

func (r *fakeResolver) drop(owner, name string) {
	n := r.hostnames[name]
	if n == nil || n.owners[owner] == 0 {
		panic(fmt.Sprintf("RemoveHostname(%s, %s) without a reference", owner, name))
	}
	if n.owners[owner]--; n.owners[owner] == 0 {
		delete(n.owners, owner)
	}
	if len(n.owners) == 0 {
		delete(r.hostnames, name)
		delete(r.byAddr, n.addr)
	}
}

func (r *fakeResolver) AddWildcard(owner, pattern string, onAllocate func(string, netip.Addr) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wildcards[pattern] == nil {
		r.wildcards[pattern] = make(map[string]func(string, netip.Addr) error)
	}
	r.wildcards[pattern][owner] = onAllocate
	return nil
}

func (r *fakeResolver) RemoveWildcard(owner, pattern string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.wildcards[pattern][owner]; !ok {
		panic(fmt.Sprintf("RemoveWildcard(%s, %s) without a registration", owner, pattern))
	}
	delete(r.wildcards[pattern], owner)
	if len(r.wildcards[pattern]) == 0 {
		delete(r.wildcards, pattern)
	}
	// Release the names allocated under the pattern for that owner.
	for name, n := range r.hostnames {
		if strings.HasSuffix(name, pattern[1:]) && n.owners[owner+" "+pattern] > 0 {
			for n.owners[owner+" "+pattern] > 0 {
				r.drop(owner+" "+pattern, name)
			}
		}
	}
}

func (r *fakeResolver) Lookup(addr netip.Addr) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name, ok := r.byAddr[addr]
	return name, ok
}

// query answers an A query for name: a known hostname, or a name under a
// registered wildcard, allocated and announced to the callbacks (without
// the lock held) before the answer.
func (r *fakeResolver) query(name string) (netip.Addr, error) {
	r.mu.Lock()
	var callbacks []func(string, netip.Addr) error
	var addr netip.Addr
	for pattern, owners := range r.wildcards {
		if !strings.HasSuffix(name, pattern[1:]) {
			continue
		}
		for owner, cb := range owners {
			key := owner + " " + pattern
			if n := r.hostnames[name]; n == nil || n.owners[key] == 0 {
				addr = r.take(key, name)
			}
			callbacks = append(callbacks, cb)
		}
	}
	if n := r.hostnames[name]; n != nil {
		addr = n.addr
	}
	r.mu.Unlock()
	if !addr.IsValid() {
		return netip.Addr{}, fmt.Errorf("%s: refused", name)
	}
	for _, cb := range callbacks {
		if err := cb(name, addr); err != nil {
			return netip.Addr{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	return addr, nil
}

// refs returns how many owners hold name.
func (r *fakeResolver) refs(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.hostnames[name]; n != nil {
		return len(n.owners)
	}
	return 0
}

func (r *fakeResolver) wildcardOwners(pattern string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var owners []string
	for owner := range r.wildcards[pattern] {
		owners = append(owners, owner)
	}
	slices.Sort(owners)
	return owners
}

// fakeListeners hands out ports from 40001 on and records the calls.
type fakeListeners struct {
	mu    sync.Mutex
	next  uint16
	open  map[string]ListenerSpec // by service id, with the port given
	calls []string
	fail  map[string]error
}

func newFakeListeners() *fakeListeners {
	return &fakeListeners{next: 40000, open: make(map[string]ListenerSpec), fail: make(map[string]error)}
}

func (l *fakeListeners) Open(_ context.Context, spec ListenerSpec) (uint16, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf("open %s %v port %d", spec.ServiceID, spec.Protocols, spec.Port))
	if err := l.fail[spec.ServiceID]; err != nil {
		return 0, err
	}
	if spec.Port == 0 {
		l.next++
		spec.Port = l.next
	}
	l.open[spec.ServiceID] = spec
	return spec.Port, nil
}

func (l *fakeListeners) Close(id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, "close "+id)
	if _, ok := l.open[id]; !ok {
		return fmt.Errorf("close %s: not open", id)
	}
	delete(l.open, id)
	return nil
}

// Calls returns the recorded calls and forgets them.
func (l *fakeListeners) Calls() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	calls := l.calls
	l.calls = nil
	return calls
}

func (l *fakeListeners) isOpen(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.open[id]
	return ok
}

// fakeContext is the part of a ziti.Context that Attach uses.
type fakeContext struct {
	zitisdk.Context
	events   *fakeEventer
	identity *rest_model.IdentityDetail
}

func (c *fakeContext) Events() zitisdk.Eventer { return c.events }

func (c *fakeContext) GetCurrentIdentity() (*rest_model.IdentityDetail, error) {
	return c.identity, nil
}

type serviceListener = func(zitisdk.Context, *rest_model.ServiceDetail)

// fakeEventer keeps the service listeners, to be called as the SDK would.
type fakeEventer struct {
	zitisdk.Eventer
	mu        sync.Mutex
	listeners map[zitisdk.ServiceEventType][]*serviceListener
}

func (e *fakeEventer) add(t zitisdk.ServiceEventType, l serviceListener) func() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.listeners == nil {
		e.listeners = make(map[zitisdk.ServiceEventType][]*serviceListener)
	}
	p := &l
	e.listeners[t] = append(e.listeners[t], p)
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.listeners[t] = slices.DeleteFunc(e.listeners[t], func(q *serviceListener) bool { return q == p })
	}
}

func (e *fakeEventer) AddServiceAddedListener(l func(zitisdk.Context, *rest_model.ServiceDetail)) func() {
	return e.add(zitisdk.ServiceAdded, l)
}

func (e *fakeEventer) AddServiceChangedListener(l func(zitisdk.Context, *rest_model.ServiceDetail)) func() {
	return e.add(zitisdk.ServiceChanged, l)
}

func (e *fakeEventer) AddServiceRemovedListener(l func(zitisdk.Context, *rest_model.ServiceDetail)) func() {
	return e.add(zitisdk.ServiceRemoved, l)
}

// emit calls the listeners of t on the caller's goroutine, like the SDK's
// refresh loop, and returns how many there were.
func (e *fakeEventer) emit(ctx zitisdk.Context, t zitisdk.ServiceEventType, svc *rest_model.ServiceDetail) int {
	e.mu.Lock()
	ls := slices.Clone(e.listeners[t])
	e.mu.Unlock()
	for _, l := range ls {
		(*l)(ctx, svc)
	}
	return len(ls)
}
