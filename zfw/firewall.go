// Package zfw gives OpenZiti tunnelers and routers an eBPF dataplane.
//
// New loads the dataplane and attaches it to interfaces. A tunneler then
// opens its TPROXY sockets (package tproxy) and registers one intercept
// per service; from then on the kernel steers every matching TCP
// connection and UDP datagram straight into that service's socket, with
// its original destination intact. No iptables, no per-service routes:
// one fwmark rule per address family delivers every steered packet
// locally, whatever the number of services.
//
//	fw, err := zfw.New(zfw.Options{Interfaces: []zfw.Interface{{Name: "eth0"}}})
//	defer fw.Close()
//	ln, err := tproxy.ListenTCP(ctx, netip.MustParseAddrPort("127.0.0.1:0"))
//	err = fw.Register(ctx, intercept.Intercept{ServiceID: "3Tq…", …, TProxyPort: ln.Port()})
//
// Rule precedence: the longest destination prefix wins, then the longest
// source prefix, then the rule registered first. A prefix whose rules do
// not match the packet's port, source or interface falls through to the
// next shorter prefix.
package zfw

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/dataplane"
	zmaps "github.com/zfw-go/zfw/internal/maps"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/internal/rulestore"
	"github.com/zfw-go/zfw/internal/wire"
)

// Firewall is a running dataplane and its rules. It is safe for
// concurrent use.
type Firewall struct {
	opts Options
	log  logrus.FieldLogger
	dp   *dataplane.Dataplane // nil InMemory

	mu       sync.Mutex
	life     sync.RWMutex // held shared while maps are used outside mu
	closed   bool
	stop     chan struct{} // closed by Close: ends the address watcher
	tbl      *rulestore.Table
	ifaces   map[string]*ifaceState
	services map[string]*service
	events   *eventReader // the active Events reader, if any
	// eventsUnread counts events an Events reader missed, its channel
	// full (Stats.EventsUnread).
	eventsUnread atomic.Uint64
	tunnel       Tunnel // tunnel mode, if set
	// watching: the address watcher runs (from the first attachment on).
	watching bool
	// listenerMissed: when a TPROXY port's listener was last looked for
	// and not found (handOverListeners).
	listenerMissed map[bpfobj.ZfwListenerKey]listenerMiss
	// listenerHanded: the TPROXY ports this process put a listener of
	// into listener_map (a hint: whether to ask the map before the
	// namespace's sockets).
	listenerHanded map[bpfobj.ZfwListenerKey]struct{}
	// nextRetry: when the first of listenerMissed is due again.
	nextRetry time.Time
	// diag looks sockets up in the dataplane's namespace (socketsFor);
	// noDiag: it cannot here, and /proc/net is read instead.
	diag   *sockDiag
	noDiag bool
	// sources counts the uses of each local source (LocalSources).
	sources map[netip.Prefix]int
}

type ifaceState struct {
	index    int
	settings InterfaceSettings
}

type service struct {
	ic  intercept.Intercept
	ids []uint32
}

// New starts the dataplane: it loads and pins the BPF objects (or adopts
// the ones a previous process kept), attaches the ingress program to
// every interface in opts, and installs the policy routing. On error
// nothing New created is left behind.
func New(opts Options) (*Firewall, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	f := &Firewall{
		opts:     opts,
		log:      opts.Logger,
		ifaces:   make(map[string]*ifaceState),
		services: make(map[string]*service),
		stop:     make(chan struct{}),
	}
	if opts.InMemory {
		set, err := zmaps.NewMemorySet(uint32(opts.MaxRules), uint32(opts.MaxPrefixes))
		if err != nil {
			return nil, err
		}
		f.tbl = tableFor(set, opts)
		if err := f.tbl.WriteConfig(); err != nil {
			return nil, err
		}
		for _, ifc := range opts.Interfaces {
			idx, err := f.ifindex(ifc.Name)
			if err != nil {
				return nil, err
			}
			if err := f.setInterface(ifc.Name, idx, ifc.InterfaceSettings); err != nil {
				return nil, err
			}
		}
		return f, nil
	}

	dp, err := dataplane.Open(context.Background(), dataplane.Config{
		PinPath:      opts.PinPath,
		Mark:         opts.Mark,
		Table:        opts.RouteTable,
		RulePriority: opts.RulePriority,
		LegacyTC:     opts.LegacyTC,
		AdoptOnly:    opts.RulesOnly,
		MaxRules:     uint32(opts.MaxRules),
		MaxPrefixes:  uint32(opts.MaxPrefixes),
		Logger:       opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	f.dp = dp
	f.tbl = tableFor(dp.Maps(), opts)
	if err := f.start(); err != nil {
		close(f.stop)
		// A fresh dataplane is torn down; an adopted one is left as the
		// previous process kept it.
		if cerr := dp.Close(dp.Adopted()); cerr != nil {
			f.log.WithError(cerr).Warn("cleanup after failed start")
		}
		return nil, err
	}
	if !opts.RulesOnly {
		// A RulesOnly caller is short-lived; sessions are its owner's.
		go f.collect(gcInterval(Timeouts(f.tbl.Timeouts)))
		go f.every(retryEvery, func() bool { f.retryHandOver(); return true })
	}
	return f, nil
}

// tableFor makes the table over set with the options' settings.
func tableFor(set *zmaps.Set, opts Options) *rulestore.Table {
	t := rulestore.New(set, opts.Mark)
	t.Timeouts = rulestore.Timeouts(opts.Timeouts)
	t.EventsPerSec = uint32(opts.EventsPerSecond)
	t.SYNFlood = opts.SYNFlood
	return t
}

func (f *Firewall) start() error {
	// Local sources an earlier owner kept, or left when it died: each
	// counts as added once.
	f.sources = make(map[netip.Prefix]int)
	kept, err := f.dp.LocalSources()
	if err != nil {
		return fmt.Errorf("open dataplane at %s: %w", f.opts.PinPath, err)
	}
	for _, p := range kept {
		f.sources[p] = 1
	}
	if f.opts.RulesOnly {
		if err := f.tbl.Load(true); err != nil {
			return fmt.Errorf("open dataplane at %s: %w", f.opts.PinPath, publicError(err))
		}
		f.adoptServices()
		return nil
	}
	if f.dp.Adopted() {
		if err := f.tbl.Load(false); err != nil {
			return fmt.Errorf("adopt dataplane at %s: %w", f.opts.PinPath, publicError(err))
		}
		if f.tbl.Mark != f.opts.Mark {
			f.tbl.Mark = f.opts.Mark
		}
		f.adoptServices()
		// Rules added while no owner ran (zfw -I on a kept dataplane)
		// have had nobody to hand their listeners over.
		adopted := make([]*policy.Rule, 0, len(f.tbl.Rules))
		for _, r := range f.tbl.Rules {
			adopted = append(adopted, r)
		}
		f.handOverListeners(adopted)
		f.log.WithFields(logrus.Fields{"pins": f.opts.PinPath, "rules": len(f.tbl.Rules)}).Info("adopted running dataplane")
	}
	if err := f.tbl.WriteConfig(); err != nil {
		return err
	}
	if len(f.opts.Interfaces) > 0 {
		// Only an attached dataplane steers, so only then does the
		// namespace need the fwmark routing.
		if err := f.dp.InstallRouting(); err != nil {
			return err
		}
		if err := f.dp.AttachSkLookup(); err != nil {
			return err
		}
	}
	keep := make(map[string]bool)
	for _, ifc := range f.opts.Interfaces {
		keep[ifc.Name] = true
	}
	if f.dp.Adopted() {
		if err := f.dp.DetachStale(keep); err != nil {
			f.log.WithError(err).Warn("detach interfaces of the previous process")
		}
	}
	for _, ifc := range f.opts.Interfaces {
		// Settings first: the program leaves interfaces without them alone.
		idx, err := f.dp.Ifindex(ifc.Name)
		if err != nil {
			return fmt.Errorf("attach %s ingress: %w", ifc.Name, err)
		}
		if err := f.setInterface(ifc.Name, idx, ifc.InterfaceSettings); err != nil {
			return err
		}
		if _, err := f.dp.Attach(ifc.Name); err != nil {
			return err
		}
		f.log.WithField("interface", ifc.Name).Info("dataplane attached")
	}
	if len(f.opts.Interfaces) > 0 {
		return f.watchAddresses()
	}
	return nil
}

// watchAddresses starts keeping the attached interfaces' addresses in
// the dataplane current, once.
func (f *Firewall) watchAddresses() error {
	if f.watching {
		return nil
	}
	err := f.dp.WatchAddresses(f.stop, func(ifindex int) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.closed {
			return
		}
		for name, st := range f.ifaces {
			if st.index == ifindex {
				if err := f.writeAddresses(ifindex); err != nil {
					f.log.WithError(err).WithField("interface", name).Warn("update interface addresses")
				}
			}
		}
	})
	if err != nil {
		return err
	}
	f.watching = true
	return nil
}

// writeAddresses copies an interface's addresses into ifindex_ip_map and
// ifindex_ip6_map, where the program looks for "to this host".
func (f *Firewall) writeAddresses(ifindex int) error {
	v4, v6, err := f.dp.Addresses(ifindex)
	if err != nil {
		return err
	}
	objs := f.dp.Objects()
	key := uint32(ifindex)
	var a4 bpfobj.ZfwIfaceAddrs4
	for _, a := range v4 {
		if int(a4.Count) < len(a4.Addr) {
			a4.Addr[a4.Count] = wire.Addr(a)[0]
			a4.Count++
		}
	}
	var a6 bpfobj.ZfwIfaceAddrs6
	for _, a := range v6 {
		if int(a6.Count) < len(a6.Addr) {
			a6.Addr[a6.Count] = wire.Addr(a)
			a6.Count++
		}
	}
	if err := objs.IfindexIpMap.Update(key, &a4, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("ifindex_ip_map: update: %w", err)
	}
	if err := objs.IfindexIp6Map.Update(key, &a6, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("ifindex_ip6_map: update: %w", err)
	}
	if len(v4) > len(a4.Addr) || len(v6) > len(a6.Addr) {
		f.log.WithField("ifindex", ifindex).Warnf("interface has more than %d addresses of a family; the first %d count as its own", len(a4.Addr), len(a4.Addr))
	}
	return nil
}

// addresses returns the addresses the dataplane holds as an attached
// interface's own (ifindex_ip_map, ifindex_ip6_map), kept current from
// netlink address events.
func (f *Firewall) addresses(name string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	st := f.ifaces[name]
	if st == nil {
		return nil, fmt.Errorf("addresses of %s: not attached: %w", name, ErrNotFound)
	}
	if f.dp == nil {
		return nil, nil
	}
	objs := f.dp.Objects()
	var out []netip.Addr
	var a4 bpfobj.ZfwIfaceAddrs4
	if err := objs.IfindexIpMap.Lookup(uint32(st.index), &a4); err == nil {
		for i := range min(int(a4.Count), len(a4.Addr)) {
			out = append(out, wire.AddrFrom([4]uint32{a4.Addr[i]}, 4))
		}
	}
	var a6 bpfobj.ZfwIfaceAddrs6
	if err := objs.IfindexIp6Map.Lookup(uint32(st.index), &a6); err == nil {
		for i := range min(int(a6.Count), len(a6.Addr)) {
			out = append(out, wire.AddrFrom(a6.Addr[i], 6))
		}
	}
	return out, nil
}

// Close stops the firewall. Unless Options.KeepOnClose is set it detaches
// the program, removes the policy routing and deletes the pinned maps.
func (f *Firewall) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.stop)
	if f.dp == nil {
		f.mu.Unlock()
		return nil
	}
	if !f.opts.KeepOnClose {
		objs := f.dp.Objects()
		for name, st := range f.ifaces {
			if err := f.tbl.Maps.Diag.Delete(uint32(st.index)); err != nil && !errors.Is(err, zmaps.ErrKeyNotExist) {
				f.log.WithError(err).WithField("interface", name).Warn("clear interface settings")
			}
			objs.IfindexIpMap.Delete(uint32(st.index))
			objs.IfindexIp6Map.Delete(uint32(st.index))
		}
	}
	events := f.events
	if f.diag != nil {
		f.diag.close()
		f.diag = nil
	}
	f.mu.Unlock()
	if events != nil {
		// The reader's goroutines end on f.stop; wait before the ring
		// buffer goes.
		events.done.Wait()
	}
	// Wait for background readers of the maps (session walks), which
	// hold life while they work outside mu.
	f.life.Lock()
	defer f.life.Unlock()
	return f.dp.Close(f.opts.KeepOnClose)
}

// kernel returns the loaded objects for op, or why op cannot run: the
// firewall is closed, ctx is done, or it keeps its maps in memory. f.mu
// must be held.
func (f *Firewall) kernel(ctx context.Context, op string) (*bpfobj.ZfwObjects, error) {
	if err := f.check(ctx); err != nil {
		return nil, err
	}
	if f.dp == nil {
		return nil, fmt.Errorf("%s: no kernel dataplane in memory mode", op)
	}
	return f.dp.Objects(), nil
}

func (f *Firewall) check(ctx context.Context) error {
	if f.closed {
		return ErrClosed
	}
	return ctx.Err()
}

func (f *Firewall) ifindex(name string) (int, error) {
	if st := f.ifaces[name]; st != nil {
		return st.index, nil
	}
	if f.dp != nil {
		return f.dp.Ifindex(name)
	}
	if f.opts.InterfaceIndex == nil {
		return 0, fmt.Errorf("interface %s: no InterfaceIndex resolver in memory mode", name)
	}
	return f.opts.InterfaceIndex(name)
}

func (f *Firewall) ifname(index int) string {
	for name, st := range f.ifaces {
		if st.index == index {
			return name
		}
	}
	if f.dp != nil {
		if l, err := f.dp.Netlink().LinkByIndex(index); err == nil {
			return l.Attrs().Name
		}
	}
	return fmt.Sprintf("if%d", index)
}

// SetInterface changes the settings of an attached interface. Turning
// TunnelMode on with no tunnel set (SetTunnel) takes the namespace's
// Ziti tun, if it has exactly one tun device named ziti*.
func (f *Firewall) SetInterface(ctx context.Context, name string, s InterfaceSettings) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(ctx); err != nil {
		return err
	}
	st := f.ifaces[name]
	if st == nil {
		return fmt.Errorf("set interface %s: not attached: %w", name, ErrNotFound)
	}
	if err := f.setInterface(name, st.index, s); err != nil {
		return err
	}
	if s.TunnelMode {
		f.takeZitiTun(ctx)
	}
	return nil
}

// settingBits pairs each of s's settings with its diag_map bit.
func settingBits(s *InterfaceSettings) []struct {
	on   *bool
	flag bpfobj.ZfwIfaceFlag
} {
	return []struct {
		on   *bool
		flag bpfobj.ZfwIfaceFlag
	}{
		{&s.DefaultDeny, bpfobj.ZfwIfaceFlagZFW_IFACE_DEFAULT_DENY},
		{&s.PerInterfaceRules, bpfobj.ZfwIfaceFlagZFW_IFACE_PER_INTERFACE},
		{&s.Verbose, bpfobj.ZfwIfaceFlagZFW_IFACE_VERBOSE},
		{&s.ICMPEcho, bpfobj.ZfwIfaceFlagZFW_IFACE_ICMP_ECHO},
		{&s.DisableSSH, bpfobj.ZfwIfaceFlagZFW_IFACE_SSH_DISABLE},
		{&s.VRRP, bpfobj.ZfwIfaceFlagZFW_IFACE_VRRP},
		{&s.EAPOL, bpfobj.ZfwIfaceFlagZFW_IFACE_EAPOL},
		{&s.PassNonTuple, bpfobj.ZfwIfaceFlagZFW_IFACE_PASS_NON_TUPLE},
		{&s.DisableIPv6, bpfobj.ZfwIfaceFlagZFW_IFACE_IPV6DISABLE},
		{&s.OutboundFilter, bpfobj.ZfwIfaceFlagZFW_IFACE_OUTBOUND_FILTER},
		{&s.Masquerade, bpfobj.ZfwIfaceFlagZFW_IFACE_MASQUERADE},
		{&s.DDoSProtection, bpfobj.ZfwIfaceFlagZFW_IFACE_DDOS},
		{&s.OTFiltering, bpfobj.ZfwIfaceFlagZFW_IFACE_OT_FILTERING},
		{&s.TunnelMode, bpfobj.ZfwIfaceFlagZFW_IFACE_TUNNEL_MODE},
	}
}

// settingsFromFlags reads a diag_map value back into settings.
func settingsFromFlags(flags uint32) InterfaceSettings {
	var s InterfaceSettings
	for _, b := range settingBits(&s) {
		*b.on = flags&uint32(b.flag) != 0
	}
	return s
}

func (f *Firewall) setInterface(name string, index int, s InterfaceSettings) error {
	var v bpfobj.ZfwIfaceSettings
	for _, b := range settingBits(&s) {
		if *b.on {
			v.Flags |= uint32(b.flag)
		}
	}
	if f.dp != nil {
		if err := f.writeAddresses(index); err != nil {
			return fmt.Errorf("set interface %s: %w", name, err)
		}
	}
	if err := f.tbl.Maps.Diag.Update(uint32(index), &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set interface %s: diag_map: %w", name, limitIfFull("diag_map", err))
	}
	f.ifaces[name] = &ifaceState{index: index, settings: s}
	// Flows cached under the old settings are decided afresh.
	if err := f.tbl.VoidFlowCache(); err != nil {
		return fmt.Errorf("set interface %s: %w", name, err)
	}
	return nil
}

// Interfaces lists the attached interfaces and their settings. A
// RulesOnly Firewall lists those its owner set, read from the dataplane
// (an interface gone from this namespace is named by its index).
func (f *Firewall) Interfaces() []Interface {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Interface, 0, len(f.ifaces))
	for name, st := range f.ifaces {
		out = append(out, Interface{Name: name, InterfaceSettings: st.settings})
	}
	if f.opts.RulesOnly {
		var index uint32
		var v bpfobj.ZfwIfaceSettings
		for it := f.tbl.Maps.Diag.Iterate(); it.Next(&index, &v); {
			name := fmt.Sprintf("if%d", index)
			if ifc, err := net.InterfaceByIndex(int(index)); err == nil {
				name = ifc.Name
			}
			out = append(out, Interface{Name: name, InterfaceSettings: settingsFromFlags(v.Flags)})
		}
	}
	sortInterfaces(out)
	return out
}

// Usage is how full the rule maps are.
type Usage struct {
	Rules, MaxRules            int
	Prefixes4, Prefixes6       int
	EgressPrefixes4            int
	EgressPrefixes6            int
	MaxPrefixes                int // per family
	Services                   int
	RulesPerPrefix             int // the most one prefix key holds
	Generation                 uint32
	InMemory, AdoptedDataplane bool
}

// Usage reports counts against the map capacities.
func (f *Firewall) Usage() Usage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Usage{
		Rules:            len(f.tbl.Rules),
		MaxRules:         int(f.tbl.Maps.Ranges.MaxEntries()),
		Prefixes4:        f.tbl.Prefixes[0],
		Prefixes6:        f.tbl.Prefixes[1],
		EgressPrefixes4:  f.tbl.Prefixes[2],
		EgressPrefixes6:  f.tbl.Prefixes[3],
		MaxPrefixes:      int(f.tbl.Maps.Prefix4.MaxEntries()),
		Services:         len(f.services),
		RulesPerPrefix:   policy.MaxRangesPerPrefix,
		Generation:       f.tbl.Generation,
		InMemory:         f.dp == nil,
		AdoptedDataplane: f.dp != nil && f.dp.Adopted(),
	}
}

// Stats are the dataplane's packet counters, summed over CPUs.
type Stats struct {
	Unmanaged, NotIP, Malformed, Fragments, OtherProtocols uint64
	// CacheHits packets got a rule's verdict from the flow cache, without
	// a rule lookup; PolicyLookups looked the rules up, NoMatch found no
	// rule.
	CacheHits, PolicyLookups, NoMatch uint64
	// KeptSteering TCP segments the rules pass, not steer, were marked
	// for the live connection of this host that holds their tuple: a
	// connection steered before a rule change, kept until it closes, or
	// the host's own, which the mark delivers as routing would (counted
	// under Steered too; only segments the flow cache did not decide).
	KeptSteering uint64

	Passed, Denied, Steered, NoListener, AssignFailed uint64
	// Replies admitted by a session opened outwards, and egress packets
	// recorded in such sessions.
	Replies, Tracked uint64
	// EchoReplies admitted by an echo request sent out.
	EchoReplies uint64
	// FastPath packets of inbound sessions, decided without a rule lookup.
	FastPath uint64
	// EgressDenied new outbound flows dropped by the outbound filter.
	EgressDenied uint64
	// Masqueraded packets translated on egress, Unmasqueraded replies
	// translated back, MasqueradeNoPort packets dropped for want of a
	// free translated port.
	Masqueraded, Unmasqueraded, MasqueradeNoPort uint64
	// EventsLimited were not sent for the rate limit, EventsLost for a
	// full ring buffer.
	EventsLimited, EventsLost uint64
	// Banned packets dropped from banned sources; Bans sources banned.
	Banned, Bans uint64
	// EventsUnread events an Events channel missed because its reader
	// had fallen behind by its whole buffer.
	EventsUnread uint64
	// NotAllowed connections to protected ports dropped because their
	// source is not on the DDoS allow-list (ddos.Protection.AllowSources).
	NotAllowed uint64
	// OTDropped DNP3 or Modbus packets refused.
	OTDropped uint64
	// Tunneled packets sent into the Ziti tun; TunReturned replies the
	// tun's XDP program sent back out.
	Tunneled, TunReturned uint64
	// FlowCacheHits were decided by the per-CPU flow cache alone, without
	// a session or rule lookup (they are counted under their path too:
	// CacheHits, FastPath or Replies).
	FlowCacheHits uint64
	// TupleInUse steered SYNs were left to the kernel (marked, not
	// assigned to the listener) because a socket of an earlier connection
	// still held their tuple, most often the listener's side in
	// TIME_WAIT: that socket answers, the client resets it and retries.
	TupleInUse uint64
	// TupleHandedOver counts SYNs of TupleInUse that the old socket let
	// go (it was in TIME_WAIT) and the namespace's sk_lookup program
	// handed to their listener, at once, as without interception.
	TupleHandedOver uint64
}

// Stats reads the packet counters. It fails in memory mode.
func (f *Firewall) Stats() (Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	objs, err := f.kernel(context.Background(), "stats")
	if err != nil {
		return Stats{}, err
	}
	s, err := readStats(objs.StatsMap)
	s.EventsUnread = f.eventsUnread.Load()
	return s, err
}

func readStats(m *ebpf.Map) (Stats, error) {
	get := func(i bpfobj.ZfwStat) (uint64, error) {
		var per []uint64
		if err := m.Lookup(uint32(i), &per); err != nil {
			return 0, fmt.Errorf("stats_map: lookup %d: %w", i, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		return sum, nil
	}
	var s Stats
	var err error
	for _, x := range []struct {
		dst *uint64
		i   bpfobj.ZfwStat
	}{
		{&s.Unmanaged, bpfobj.ZfwStatZFW_STAT_UNMANAGED},
		{&s.NotIP, bpfobj.ZfwStatZFW_STAT_NOT_IP},
		{&s.Malformed, bpfobj.ZfwStatZFW_STAT_MALFORMED},
		{&s.Fragments, bpfobj.ZfwStatZFW_STAT_FRAGMENT},
		{&s.OtherProtocols, bpfobj.ZfwStatZFW_STAT_OTHER_PROTO},
		{&s.KeptSteering, bpfobj.ZfwStatZFW_STAT_KEPT_STEERING},
		{&s.PolicyLookups, bpfobj.ZfwStatZFW_STAT_POLICY_LOOKUP},
		{&s.NoMatch, bpfobj.ZfwStatZFW_STAT_NO_MATCH},
		{&s.Passed, bpfobj.ZfwStatZFW_STAT_PASS},
		{&s.Denied, bpfobj.ZfwStatZFW_STAT_DENY},
		{&s.Steered, bpfobj.ZfwStatZFW_STAT_TPROXY},
		{&s.NoListener, bpfobj.ZfwStatZFW_STAT_NO_LISTENER},
		{&s.AssignFailed, bpfobj.ZfwStatZFW_STAT_ASSIGN_FAILED},
		{&s.Replies, bpfobj.ZfwStatZFW_STAT_REPLY},
		{&s.Tracked, bpfobj.ZfwStatZFW_STAT_TRACKED},
		{&s.EchoReplies, bpfobj.ZfwStatZFW_STAT_ECHO_REPLY},
		{&s.FastPath, bpfobj.ZfwStatZFW_STAT_FAST_PATH},
		{&s.EgressDenied, bpfobj.ZfwStatZFW_STAT_EGRESS_DENY},
		{&s.Masqueraded, bpfobj.ZfwStatZFW_STAT_MASQUERADED},
		{&s.Unmasqueraded, bpfobj.ZfwStatZFW_STAT_UNMASQUERADED},
		{&s.MasqueradeNoPort, bpfobj.ZfwStatZFW_STAT_MASQ_NO_PORT},
		{&s.EventsLimited, bpfobj.ZfwStatZFW_STAT_EVENTS_LIMITED},
		{&s.EventsLost, bpfobj.ZfwStatZFW_STAT_EVENTS_LOST},
		{&s.Banned, bpfobj.ZfwStatZFW_STAT_BANNED},
		{&s.Bans, bpfobj.ZfwStatZFW_STAT_BANS},
		{&s.OTDropped, bpfobj.ZfwStatZFW_STAT_OT_DROPPED},
		{&s.Tunneled, bpfobj.ZfwStatZFW_STAT_TUNNELED},
		{&s.TunReturned, bpfobj.ZfwStatZFW_STAT_TUN_RETURNED},
		{&s.TupleInUse, bpfobj.ZfwStatZFW_STAT_TUPLE_IN_USE},
		{&s.NotAllowed, bpfobj.ZfwStatZFW_STAT_NOT_ALLOWED},
		{&s.TupleHandedOver, bpfobj.ZfwStatZFW_STAT_TW_HANDED_OVER},
	} {
		if *x.dst, err = get(x.i); err != nil {
			return s, err
		}
	}
	// A packet the flow cache decided has one counter for its outcome;
	// it counts under the path it stands for too.
	for _, x := range []struct {
		i    bpfobj.ZfwStat
		also []*uint64
	}{
		{bpfobj.ZfwStatZFW_STAT_FLOW_STEERED, []*uint64{&s.CacheHits, &s.Steered}},
		{bpfobj.ZfwStatZFW_STAT_FLOW_RULE_PASS, []*uint64{&s.CacheHits, &s.Passed}},
		{bpfobj.ZfwStatZFW_STAT_FLOW_RULE_DENY, []*uint64{&s.CacheHits, &s.Denied}},
		{bpfobj.ZfwStatZFW_STAT_FLOW_INBOUND, []*uint64{&s.FastPath}},
		{bpfobj.ZfwStatZFW_STAT_FLOW_INBOUND_TPROXY, []*uint64{&s.FastPath, &s.Steered}},
		{bpfobj.ZfwStatZFW_STAT_FLOW_REPLY, []*uint64{&s.Replies}},
	} {
		n, err := get(x.i)
		if err != nil {
			return s, err
		}
		s.FlowCacheHits += n
		for _, c := range x.also {
			*c += n
		}
	}
	return s, nil
}

func protoNumber(p intercept.Protocol) (uint8, bool) {
	switch p {
	case intercept.TCP:
		return policy.ProtoTCP, true
	case intercept.UDP:
		return policy.ProtoUDP, true
	}
	return 0, false
}

func protoOf(n uint8) intercept.Protocol {
	if n == policy.ProtoUDP {
		return intercept.UDP
	}
	return intercept.TCP
}
