package ziti

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/openziti/edge-api/rest_model"
	zitisdk "github.com/openziti/sdk-golang/ziti"
	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/policy"
)

// Registrar installs and removes intercepts in the dataplane. *zfw.Firewall
// satisfies it. Register with a service id already registered must
// replace its intercept in one step.
type Registrar interface {
	Register(ctx context.Context, ic intercept.Intercept) error
	Unregister(ctx context.Context, serviceID string) error
}

// Resolver gives intercepted hostnames and wildcard domains their
// addresses; the tunneler's DNS server answers with them. The owner is
// always the service id.
//
// onAllocate callbacks take the Interceptor's lock, and the Interceptor
// calls the Resolver with that lock held: a Resolver must not hold a lock
// of its own while it runs a callback that its other methods need, and
// AddWildcard must not run the callback before it returns.
type Resolver interface {
	// AddHostname returns the address for name, allocating one on first
	// use; owners are ref-counted (same name from two owners → same
	// address).
	AddHostname(owner, name string) (netip.Addr, error)
	// RemoveHostname drops the owner's reference to name.
	RemoveHostname(owner, name string)
	// AddWildcard registers "*.example.com"; onAllocate runs synchronously
	// when a query allocates an address for a matching name, before the
	// answer leaves; an error from it fails the query.
	AddWildcard(owner, pattern string, onAllocate func(name string, addr netip.Addr) error) error
	// RemoveWildcard drops the owner's registration of pattern and its
	// references to the names allocated under it.
	RemoveWildcard(owner, pattern string)
	// Lookup maps an allocated address back to its name (for
	// dst_hostname).
	Lookup(addr netip.Addr) (string, bool)
}

// ListenerSpec says which transparent listeners a service needs.
type ListenerSpec struct {
	ServiceID   string
	ServiceName string
	// Protocols are the protocols to listen for, TCP and/or UDP, on one
	// port.
	Protocols []intercept.Protocol
	// Port is the port the service's listeners already use, 0 when it has
	// none yet.
	Port uint16
}

// Listeners opens and closes a service's TPROXY listeners; the tunneler
// implements it (see package tproxy) and serves the flows they accept.
type Listeners interface {
	// Open makes the service's listeners match spec and returns their
	// port, on the loopback address. It is called when a service is first
	// intercepted and again, with spec.Port set, when its protocols
	// change; returning spec.Port then keeps the dataplane's rules
	// pointing at the same port.
	Open(ctx context.Context, spec ListenerSpec) (port uint16, err error)
	// Close closes the service's listeners.
	Close(serviceID string) error
}

// Options configure an Interceptor.
type Options struct {
	// Registrar receives the intercepts. Required.
	Registrar Registrar
	// Listeners opens the TPROXY listeners. Required.
	Listeners Listeners
	// Resolver allocates addresses for hostnames and wildcards. Nil: such
	// addresses are skipped with a warning.
	Resolver Resolver
	// Interfaces, if any, limit every intercept to these interfaces.
	Interfaces []string
	// Identity returns the tunneler's identity for templates that use
	// $tunneler_id. Nil: Attach sets it to the context's current
	// identity; without Attach, those variables expand to "".
	Identity func(ctx context.Context) (TunnelerIdentity, error)
	// Logger receives the logs. Default: a logger that discards
	// everything.
	Logger logrus.FieldLogger
}

// Service is what the Interceptor knows of an intercepted service.
type Service struct {
	ID string
	// Name is the service's current name, the one to dial.
	Name   string
	Config Config
	// Intercept is the intercept registered for the service; it has no
	// addresses while nothing is registered (a service whose only
	// addresses are wildcards no client has looked up yet).
	Intercept intercept.Intercept
	// Port is the port of the service's TPROXY listeners.
	Port uint16
	// SourceIP and DialIdentity are the config's templates, with the
	// tunneler's identity already filled in.
	SourceIP, DialIdentity Template
}

// DialOptions returns the options to dial the service with for a flow
// whose destination has the given hostname ("" if unknown): the connect
// timeout, the expanded identity template and the AppData.
func (s Service) DialOptions(f Flow, dstHostname string) (*zitisdk.DialOptions, error) {
	sourceAddr := ""
	if !s.SourceIP.IsZero() {
		sourceAddr = s.SourceIP.Expand(f.Source, f.Destination, dstHostname)
	}
	appData, err := AppData(f, dstHostname, sourceAddr)
	if err != nil {
		return nil, fmt.Errorf("service %q (id %s): %w", s.Name, s.ID, err)
	}
	return &zitisdk.DialOptions{
		ConnectTimeout: s.Config.DialTimeout,
		Identity:       s.DialIdentity.Expand(f.Source, f.Destination, dstHostname),
		AppData:        appData,
	}, nil
}

// Event is a service event to apply.
type Event struct {
	// Type is zitisdk.ServiceAdded, ServiceChanged or ServiceRemoved.
	Type    zitisdk.ServiceEventType
	Service rest_model.ServiceDetail
}

// Interceptor turns a Ziti identity's services into intercepts and keeps
// them in sync with the service events. It is safe for concurrent use.
type Interceptor struct {
	opts Options
	log  logrus.FieldLogger

	// apply serialises every change to the intercepts: Update, Remove,
	// Close and wildcard allocations.
	apply sync.Mutex

	// mu guards the fields below; lookups take it for reading.
	mu       sync.RWMutex
	services map[string]*state // by service id
	byPort   map[uint16]string // service id by TPROXY port
	identity func(context.Context) (TunnelerIdentity, error)

	// The event queue, filled by Enqueue and drained by Run.
	queueMu sync.Mutex
	queue   []Event
	running bool
	wake    chan struct{}
}

// state is one intercepted service.
type state struct {
	svc Service
	// literals are the config's IPs and CIDRs.
	literals []netip.Prefix
	// hostnames are the names the Resolver holds for the service, with
	// their addresses.
	hostnames map[string]netip.Prefix
	// wildcards are the patterns the Resolver holds for the service, each
	// with the addresses allocated under it so far.
	wildcards map[string][]netip.Prefix
	// registered says whether svc.Intercept is in the dataplane.
	registered bool
}

// New returns an Interceptor. Attach it to a context, then Run it.
func New(opts Options) (*Interceptor, error) {
	if opts.Registrar == nil {
		return nil, errors.New("ziti intercept: Options.Registrar is required")
	}
	if opts.Listeners == nil {
		return nil, errors.New("ziti intercept: Options.Listeners is required")
	}
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		log = l
	}
	return &Interceptor{
		opts:     opts,
		log:      log,
		services: make(map[string]*state),
		byPort:   make(map[uint16]string),
		identity: opts.Identity,
		wake:     make(chan struct{}, 1),
	}, nil
}

// Attach adds service listeners to zctx that queue its service events for
// Run, and returns a function that removes them. Attach before
// zctx.Authenticate, which delivers the first Added events:
//
//	ic, _ := ziti.New(opts)
//	detach := ic.Attach(zctx)
//	go ic.Run(ctx)
//	err := zctx.Authenticate()
//
// The listeners only copy the event into the queue, so the SDK's goroutine
// never waits for the dataplane, the resolver or the listeners. When
// Options.Identity is nil, templates take $tunneler_id from
// zctx.GetCurrentIdentity.
func (i *Interceptor) Attach(zctx zitisdk.Context) (detach func()) {
	i.mu.Lock()
	if i.identity == nil {
		i.identity = contextIdentity(zctx)
	}
	i.mu.Unlock()
	queue := func(t zitisdk.ServiceEventType) func(zitisdk.Context, *rest_model.ServiceDetail) {
		return func(_ zitisdk.Context, svc *rest_model.ServiceDetail) {
			if svc != nil {
				i.Enqueue(Event{Type: t, Service: *svc})
			}
		}
	}
	events := zctx.Events()
	removers := []func(){
		events.AddServiceAddedListener(queue(zitisdk.ServiceAdded)),
		events.AddServiceChangedListener(queue(zitisdk.ServiceChanged)),
		events.AddServiceRemovedListener(queue(zitisdk.ServiceRemoved)),
	}
	return func() {
		for _, remove := range removers {
			remove()
		}
	}
}

// contextIdentity reads the tunneler's identity from the context.
func contextIdentity(zctx zitisdk.Context) func(context.Context) (TunnelerIdentity, error) {
	return func(context.Context) (TunnelerIdentity, error) {
		detail, err := zctx.GetCurrentIdentity()
		if err != nil {
			return TunnelerIdentity{}, fmt.Errorf("current identity: %w", err)
		}
		id := TunnelerIdentity{Name: deref(detail.Name)}
		if detail.AppData != nil {
			id.AppData = detail.AppData.SubTags
		}
		return id, nil
	}
}

// Enqueue queues an event for Run. It never blocks.
func (i *Interceptor) Enqueue(ev Event) {
	i.queueMu.Lock()
	i.queue = append(i.queue, ev)
	i.queueMu.Unlock()
	select {
	case i.wake <- struct{}{}:
	default:
	}
}

// Run applies the queued events, one at a time and in order, until ctx is
// done; then it returns ctx.Err(). The event being applied when ctx ends is
// finished first; events still queued stay queued for a later Run. Run leaves the intercepts in place when it returns; Close
// removes them. One Run at a time.
func (i *Interceptor) Run(ctx context.Context) error {
	i.queueMu.Lock()
	if i.running {
		i.queueMu.Unlock()
		return errors.New("ziti intercept: already running")
	}
	i.running = true
	i.queueMu.Unlock()
	defer func() {
		i.queueMu.Lock()
		i.running = false
		i.queueMu.Unlock()
	}()
	for {
		for ctx.Err() == nil {
			ev, ok := i.next()
			if !ok {
				break
			}
			// The event in hand is applied whole even if ctx ends
			// meanwhile: cut short, it would be lost, neither applied nor
			// queued.
			i.applyEvent(context.WithoutCancel(ctx), ev)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-i.wake:
		}
	}
}

// next pops the oldest queued event.
func (i *Interceptor) next() (Event, bool) {
	i.queueMu.Lock()
	defer i.queueMu.Unlock()
	if len(i.queue) == 0 {
		return Event{}, false
	}
	ev := i.queue[0]
	i.queue[0] = Event{}
	i.queue = i.queue[1:]
	return ev, true
}

// applyEvent applies one event and logs its failure.
func (i *Interceptor) applyEvent(ctx context.Context, ev Event) {
	var err error
	switch ev.Type {
	case zitisdk.ServiceAdded, zitisdk.ServiceChanged:
		err = i.Update(ctx, &ev.Service)
	case zitisdk.ServiceRemoved:
		err = i.Remove(ctx, deref(ev.Service.ID))
	default:
		err = fmt.Errorf("unknown service event type %q", ev.Type)
	}
	if err != nil {
		i.log.WithError(err).WithFields(logrus.Fields{
			"service":   deref(ev.Service.Name),
			"serviceId": deref(ev.Service.ID),
			"event":     ev.Type,
		}).Error("cannot apply service event")
	}
}

// Update intercepts the service as its current definition says: it adds
// the service, changes its intercept, or removes it when it may no longer
// be dialled or has no usable client config. Run calls it for Added and
// Changed events; a tunneler with another source of services (a router's
// data model) may call it directly.
//
// A change that leaves the intercept as it was touches neither the
// dataplane nor the listeners; the dial options are updated all the same.
// A change of the intercept re-registers it with the same TPROXY port; a
// rename counts as one, since the intercept carries the name for
// listings, and costs one in-place Register. When a change fails, the service is left not intercepted, and a
// later event retries from scratch.
func (i *Interceptor) Update(ctx context.Context, detail *rest_model.ServiceDetail) error {
	id, name := deref(detail.ID), deref(detail.Name)
	if id == "" {
		return fmt.Errorf("service %q has no id", name)
	}
	log := i.log.WithFields(logrus.Fields{"service": name, "serviceId": id})

	i.apply.Lock()
	defer i.apply.Unlock()

	if !CanDial(detail) {
		log.Debug("no Dial permission; not intercepted")
		return i.removeLocked(ctx, id)
	}
	cfg, found, err := DecodeConfig(detail)
	if err == nil && !found {
		log.Debug("no client config; not intercepted")
		return i.removeLocked(ctx, id)
	}
	var sourceIP, dialIdentity Template
	if err == nil {
		sourceIP, dialIdentity, err = i.templates(ctx, id, name, cfg)
	}
	if err != nil {
		return errors.Join(err, i.removeLocked(ctx, id))
	}
	next := Service{ID: id, Name: name, Config: cfg, SourceIP: sourceIP, DialIdentity: dialIdentity}

	i.mu.RLock()
	old := i.services[id]
	i.mu.RUnlock()
	if old == nil {
		return i.add(ctx, log, next)
	}
	if err := i.change(ctx, log, old, next); err != nil {
		return errors.Join(err, i.removeLocked(ctx, id))
	}
	return nil
}

// templates builds the config's templates.
func (i *Interceptor) templates(ctx context.Context, id, name string, cfg Config) (sourceIP, dialIdentity Template, err error) {
	var tunneler TunnelerIdentity
	if needsIdentity(cfg.SourceIP) || needsIdentity(cfg.DialIdentity) {
		i.mu.RLock()
		get := i.identity
		i.mu.RUnlock()
		if get != nil {
			if tunneler, err = get(ctx); err != nil {
				return Template{}, Template{}, fmt.Errorf("service %q (id %s): templates: %w", name, id, err)
			}
		}
	}
	fail := func(field string, err error) error {
		return &ConfigError{ServiceID: id, ServiceName: name, ConfigType: cfg.Type, Field: field, Reason: err.Error()}
	}
	if sourceIP, err = NewTemplate(cfg.SourceIP, tunneler); err != nil {
		return Template{}, Template{}, fail("sourceIp", err)
	}
	if dialIdentity, err = NewTemplate(cfg.DialIdentity, tunneler); err != nil {
		return Template{}, Template{}, fail("dialOptions.identity", err)
	}
	return sourceIP, dialIdentity, nil
}

// add intercepts a service the Interceptor does not know yet.
func (i *Interceptor) add(ctx context.Context, log logrus.FieldLogger, svc Service) (err error) {
	st := newState(svc)
	defer func() {
		if err != nil {
			err = errors.Join(err, i.release(ctx, st))
		}
	}()
	hostnames, wildcards := i.names(log, svc.Config)
	for _, name := range hostnames {
		if err := i.addHostname(st, name); err != nil {
			return err
		}
	}
	if len(st.literals) == 0 && len(st.hostnames) == 0 && len(wildcards) == 0 {
		log.Warn("no address left to intercept; not intercepted")
		return nil
	}
	spec := ListenerSpec{ServiceID: svc.ID, ServiceName: svc.Name, Protocols: svc.Config.Protocols}
	if st.svc.Port, err = i.opts.Listeners.Open(ctx, spec); err != nil {
		return fmt.Errorf("service %q (id %s): open listeners: %w", svc.Name, svc.ID, err)
	}
	for _, pattern := range wildcards {
		if err := i.addWildcard(st, pattern); err != nil {
			return err
		}
	}
	if err := i.sync(ctx, st); err != nil {
		return err
	}
	i.mu.Lock()
	i.services[svc.ID] = st
	i.byPort[st.svc.Port] = svc.ID
	i.mu.Unlock()
	log.WithField("port", st.svc.Port).Info("service intercepted")
	return nil
}

// newState returns the state of svc before any name is taken.
func newState(svc Service) *state {
	st := &state{
		svc:       svc,
		hostnames: make(map[string]netip.Prefix),
		wildcards: make(map[string][]netip.Prefix),
	}
	for _, a := range svc.Config.Addresses {
		if a.Kind == Prefix {
			st.literals = append(st.literals, a.Prefix)
		}
	}
	return st
}

// change applies a new definition of an intercepted service. New names
// are taken before the new intercept is registered and dropped ones
// released after, so flows to addresses the old and new intercepts share
// never stop.
func (i *Interceptor) change(ctx context.Context, log logrus.FieldLogger, st *state, svc Service) error {
	hostnames, wildcards := i.names(log, svc.Config)

	// added holds the names taken for the new definition only; next is
	// the new state.
	added, next := newState(svc), newState(svc)
	for _, name := range hostnames {
		if p, ok := st.hostnames[name]; ok {
			next.hostnames[name] = p
			continue
		}
		if err := i.addHostname(added, name); err != nil {
			return errors.Join(err, i.release(ctx, added))
		}
		next.hostnames[name] = added.hostnames[name]
	}
	for _, pattern := range wildcards {
		if allocated, ok := st.wildcards[pattern]; ok {
			next.wildcards[pattern] = allocated
			continue
		}
		if err := i.addWildcard(added, pattern); err != nil {
			return errors.Join(err, i.release(ctx, added))
		}
		next.wildcards[pattern] = nil
	}
	if len(next.literals) == 0 && len(next.hostnames) == 0 && len(next.wildcards) == 0 {
		log.Warn("no address left to intercept; not intercepted")
		return errors.Join(i.release(ctx, added), i.removeLocked(ctx, svc.ID))
	}

	next.svc.Port = st.svc.Port
	if !sameSet(st.svc.Config.Protocols, svc.Config.Protocols) {
		spec := ListenerSpec{ServiceID: svc.ID, ServiceName: svc.Name, Protocols: svc.Config.Protocols, Port: st.svc.Port}
		port, err := i.opts.Listeners.Open(ctx, spec)
		if err != nil {
			err = fmt.Errorf("service %q (id %s): reopen listeners: %w", svc.Name, svc.ID, err)
			return errors.Join(err, i.release(ctx, added))
		}
		next.svc.Port = port
	}

	// What the old state holds and the new one does not.
	dropped := newState(st.svc)
	for name, p := range st.hostnames {
		if _, ok := next.hostnames[name]; !ok {
			dropped.hostnames[name] = p
		}
	}
	for pattern := range st.wildcards {
		if _, ok := next.wildcards[pattern]; !ok {
			dropped.wildcards[pattern] = nil
		}
	}

	i.mu.Lock()
	oldPort := st.svc.Port
	next.svc.Intercept = st.svc.Intercept
	st.svc = next.svc
	st.literals = next.literals
	st.hostnames = next.hostnames
	st.wildcards = next.wildcards
	if st.svc.Port != oldPort {
		delete(i.byPort, oldPort)
		i.byPort[st.svc.Port] = svc.ID
	}
	i.mu.Unlock()

	err := i.sync(ctx, st)
	i.releaseNames(dropped)
	return err
}

// names splits the config's hostnames and wildcards, skipping them with a
// warning when there is no Resolver.
func (i *Interceptor) names(log logrus.FieldLogger, cfg Config) (hostnames, wildcards []string) {
	for _, a := range cfg.Addresses {
		if a.Kind == Prefix {
			continue
		}
		if i.opts.Resolver == nil {
			log.WithField("address", a.Name).Warn("no resolver; address skipped")
			continue
		}
		switch a.Kind {
		case Hostname:
			if !slices.Contains(hostnames, a.Name) {
				hostnames = append(hostnames, a.Name)
			}
		case Wildcard:
			if !slices.Contains(wildcards, a.Name) {
				wildcards = append(wildcards, a.Name)
			}
		}
	}
	return hostnames, wildcards
}

// addHostname takes name from the Resolver for st's service.
func (i *Interceptor) addHostname(st *state, name string) error {
	addr, err := i.opts.Resolver.AddHostname(st.svc.ID, name)
	if err != nil {
		return fmt.Errorf("service %q (id %s): hostname %s: %w", st.svc.Name, st.svc.ID, name, err)
	}
	addr = addr.Unmap()
	st.hostnames[name] = netip.PrefixFrom(addr, addr.BitLen())
	return nil
}

// addWildcard registers a wildcard pattern for st's service.
func (i *Interceptor) addWildcard(st *state, pattern string) error {
	id := st.svc.ID
	onAllocate := func(name string, addr netip.Addr) error {
		return i.allocated(id, pattern, name, addr)
	}
	if err := i.opts.Resolver.AddWildcard(id, pattern, onAllocate); err != nil {
		return fmt.Errorf("service %q (id %s): wildcard %s: %w", st.svc.Name, id, pattern, err)
	}
	st.wildcards[pattern] = nil
	return nil
}

// allocated extends a service's intercept with an address the Resolver
// allocated for name under one of its wildcard patterns, and registers it
// before the DNS answer leaves.
func (i *Interceptor) allocated(id, pattern, name string, addr netip.Addr) error {
	i.apply.Lock()
	defer i.apply.Unlock()
	i.mu.RLock()
	st := i.services[id]
	i.mu.RUnlock()
	if st == nil {
		return fmt.Errorf("service id %s is no longer intercepted", id)
	}
	allocated, ok := st.wildcards[pattern]
	if !ok {
		return fmt.Errorf("service %q (id %s) no longer intercepts %s", st.svc.Name, id, pattern)
	}
	p := netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
	if slices.Contains(allocated, p) {
		return nil
	}
	i.mu.Lock()
	st.wildcards[pattern] = append(allocated, p)
	i.mu.Unlock()
	if err := i.sync(context.Background(), st); err != nil {
		i.mu.Lock()
		st.wildcards[pattern] = allocated
		i.mu.Unlock()
		return err
	}
	i.log.WithFields(logrus.Fields{"service": st.svc.Name, "serviceId": id, "name": name, "address": addr}).
		Debug("wildcard name intercepted")
	return nil
}

// sync brings the dataplane in line with st: it registers the intercept st
// describes when it differs from the registered one, and unregisters it
// when it has no address left. On error the registered intercept is
// unchanged.
func (i *Interceptor) sync(ctx context.Context, st *state) error {
	ic := i.interceptOf(st)
	switch {
	case len(ic.Addresses) == 0 && st.registered:
		if err := i.opts.Registrar.Unregister(ctx, st.svc.ID); err != nil {
			return fmt.Errorf("service %q (id %s): unregister: %w", st.svc.Name, st.svc.ID, err)
		}
		i.mu.Lock()
		st.registered = false
		st.svc.Intercept = ic
		i.mu.Unlock()
	case len(ic.Addresses) > 0 && (!st.registered || !st.svc.Intercept.Equal(ic)):
		if err := i.opts.Registrar.Register(ctx, ic); err != nil {
			return fmt.Errorf("service %q (id %s): register: %w", st.svc.Name, st.svc.ID, err)
		}
		i.mu.Lock()
		st.registered = true
		st.svc.Intercept = ic
		i.mu.Unlock()
	}
	return nil
}

// interceptOf returns the intercept st describes.
func (i *Interceptor) interceptOf(st *state) intercept.Intercept {
	addrs := slices.Clone(st.literals)
	for _, p := range st.hostnames {
		addrs = append(addrs, p)
	}
	for _, allocated := range st.wildcards {
		addrs = append(addrs, allocated...)
	}
	cfg := st.svc.Config
	return intercept.Intercept{
		ServiceID:      st.svc.ID,
		ServiceName:    displayName(st.svc.Name),
		Protocols:      slices.Clone(cfg.Protocols),
		Addresses:      addrs,
		Ports:          slices.Clone(cfg.PortRanges),
		SourcePrefixes: slices.Clone(cfg.SourcePrefixes),
		Interfaces:     slices.Clone(i.opts.Interfaces),
		TProxyPort:     st.svc.Port,
	}.Normalize()
}

// displayName fits a service name into an intercept's informational
// name: control characters become '?', and it is cut, on a character
// boundary, to policy.MaxServiceNameLen bytes.
func displayName(name string) string {
	b := []byte(name)
	for k, c := range b {
		if c < 0x20 || c == 0x7f {
			b[k] = '?'
		}
	}
	if len(b) <= policy.MaxServiceNameLen {
		return string(b)
	}
	b = b[:policy.MaxServiceNameLen]
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return string(b)
}

// Remove stops intercepting a service: it unregisters its intercept,
// releases its names and closes its listeners. An unknown id is not an
// error. Run calls it for Removed events.
func (i *Interceptor) Remove(ctx context.Context, serviceID string) error {
	i.apply.Lock()
	defer i.apply.Unlock()
	return i.removeLocked(ctx, serviceID)
}

func (i *Interceptor) removeLocked(ctx context.Context, id string) error {
	i.mu.Lock()
	st := i.services[id]
	if st == nil {
		i.mu.Unlock()
		return nil
	}
	delete(i.services, id)
	if i.byPort[st.svc.Port] == id {
		delete(i.byPort, st.svc.Port)
	}
	i.mu.Unlock()
	err := i.release(ctx, st)
	i.log.WithFields(logrus.Fields{"service": st.svc.Name, "serviceId": id}).Info("service no longer intercepted")
	return err
}

// release undoes everything st holds: its intercept, names and listeners.
func (i *Interceptor) release(ctx context.Context, st *state) error {
	var errs []error
	if st.registered {
		if err := i.opts.Registrar.Unregister(ctx, st.svc.ID); err != nil {
			errs = append(errs, fmt.Errorf("service %q (id %s): unregister: %w", st.svc.Name, st.svc.ID, err))
		}
		st.registered = false
	}
	i.releaseNames(st)
	if st.svc.Port != 0 {
		if err := i.opts.Listeners.Close(st.svc.ID); err != nil {
			errs = append(errs, fmt.Errorf("service %q (id %s): close listeners: %w", st.svc.Name, st.svc.ID, err))
		}
	}
	return errors.Join(errs...)
}

// releaseNames gives back st's hostnames and wildcards to the Resolver.
func (i *Interceptor) releaseNames(st *state) {
	for name := range st.hostnames {
		i.opts.Resolver.RemoveHostname(st.svc.ID, name)
	}
	for pattern := range st.wildcards {
		i.opts.Resolver.RemoveWildcard(st.svc.ID, pattern)
	}
}

// Close stops intercepting every service. Call it after Run has returned.
func (i *Interceptor) Close(ctx context.Context) error {
	i.apply.Lock()
	defer i.apply.Unlock()
	i.mu.RLock()
	ids := make([]string, 0, len(i.services))
	for id := range i.services {
		ids = append(ids, id)
	}
	i.mu.RUnlock()
	slices.Sort(ids)
	var errs []error
	for _, id := range ids {
		errs = append(errs, i.removeLocked(ctx, id))
	}
	return errors.Join(errs...)
}

// Service returns the intercepted service with this id.
func (i *Interceptor) Service(id string) (Service, bool) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	st, ok := i.services[id]
	if !ok {
		return Service{}, false
	}
	return st.svc, true
}

// ServiceForPort returns the intercepted service whose TPROXY listeners
// use port.
func (i *Interceptor) ServiceForPort(port uint16) (Service, bool) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	id, ok := i.byPort[port]
	if !ok {
		return Service{}, false
	}
	return i.services[id].svc, true
}

// Services returns the intercepted services, by id.
func (i *Interceptor) Services() []Service {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make([]Service, 0, len(i.services))
	for _, st := range i.services {
		out = append(out, st.svc)
	}
	slices.SortFunc(out, func(a, b Service) int { return compareStrings(a.ID, b.ID) })
	return out
}

// DialOptions returns what a tunneler needs to dial for a flow its
// listener on port accepted: the service's current name and the dial
// options (timeout, identity, AppData). The destination's hostname comes
// from the Resolver.
func (i *Interceptor) DialOptions(port uint16, f Flow) (serviceName string, opts *zitisdk.DialOptions, err error) {
	svc, ok := i.ServiceForPort(port)
	if !ok {
		return "", nil, fmt.Errorf("no service intercepted on port %d", port)
	}
	hostname := ""
	if i.opts.Resolver != nil {
		hostname, _ = i.opts.Resolver.Lookup(f.Destination.Addr().Unmap())
	}
	opts, err = svc.DialOptions(f, hostname)
	if err != nil {
		return "", nil, err
	}
	return svc.Name, opts, nil
}

// sameSet reports whether two lists hold the same elements.
func sameSet[T comparable](a, b []T) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// discard is an io.Writer that drops everything.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
