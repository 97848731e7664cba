package zfw

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/internal/wire"
	"github.com/zfw-go/zfw/zfw/conntrack"
)

// Sessions is the sessions API.
type Sessions struct{ f *Firewall }

// Sessions returns the sessions API. In memory mode it has no sessions.
func (f *Firewall) Sessions() *Sessions { return &Sessions{f} }

// List returns the tracked sessions that match filter.
func (ss *Sessions) List(filter conntrack.Filter) ([]conntrack.Session, error) {
	var out []conntrack.Session
	err := ss.walk(func(s conntrack.Session, _ func() error) error {
		if filter.Match(s) {
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

// Flush removes the sessions that match filter and reports how many. A
// removed session's next reply is judged by the rules again.
func (ss *Sessions) Flush(filter conntrack.Filter) (int, error) {
	n := 0
	err := ss.walk(func(s conntrack.Session, del func() error) error {
		if !filter.Match(s) {
			return nil
		}
		if err := del(); err != nil {
			return err
		}
		n++
		return nil
	})
	if n > 0 {
		// The dataplane may still hold a removed session in its flow
		// cache; make it look at the session maps again.
		if verr := ss.f.voidFlowCache(); verr != nil && err == nil {
			err = verr
		}
	}
	return n, err
}

// voidFlowCache bumps the flow cache epoch under the firewall's lock.
func (f *Firewall) voidFlowCache() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.dp == nil {
		return nil
	}
	if err := f.tbl.VoidFlowCache(); err != nil {
		return fmt.Errorf("sessions: flush: %w", err)
	}
	return nil
}

// Count reports the number of sessions against the maps' capacities.
func (ss *Sessions) Count() (conntrack.Count, error) {
	var c conntrack.Count
	if ss.f.dp == nil {
		return c, nil
	}
	objs := ss.f.dp.Objects()
	c.MaxTCP, c.MaxUDP = int(objs.TcpMap.MaxEntries()), int(objs.UdpMap.MaxEntries())
	err := ss.walk(func(s conntrack.Session, _ func() error) error {
		switch {
		case s.Direction == conntrack.Inbound && s.Protocol == intercept.UDP:
			c.InboundUDP++
		case s.Direction == conntrack.Inbound:
			c.InboundTCP++
		case s.Protocol == intercept.UDP:
			c.UDP++
		default:
			c.TCP++
		}
		return nil
	})
	return c, err
}

// collectGarbage removes expired sessions and idle masquerade mappings.
func (ss *Sessions) collectGarbage() (int, error) {
	n, err := ss.collectMasquerade()
	if err != nil {
		return n, err
	}
	err = ss.walk(func(s conntrack.Session, del func() error) error {
		if !s.Expired {
			return nil
		}
		if err := del(); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// collectMasquerade removes translations idle past their protocol's
// timeout (TCP: the established timeout), in both directions' maps.
func (ss *Sessions) collectMasquerade() (int, error) {
	f := ss.f
	f.life.RLock()
	defer f.life.RUnlock()
	f.mu.Lock()
	closed, dp, timeouts := f.closed, f.dp, Timeouts(f.tbl.Timeouts)
	f.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	if dp == nil {
		return 0, nil
	}
	objs := dp.Objects()
	now := monotonic()
	idle := func(tstamp uint64, proto uint8) bool {
		limit := timeouts.UDP
		switch proto {
		case policy.ProtoTCP:
			limit = timeouts.TCPEstablished
		case 1, 58: // ICMP, ICMPv6 echo
			limit = timeouts.ICMPEcho
		}
		return now > tstamp && time.Duration(now-tstamp) > limit
	}
	n := 0
	for _, m := range []*ebpf.Map{objs.MasqueradeMap, objs.IcmpMasqueradeMap} {
		all, err := readAll[bpfobj.ZfwMasqKey, bpfobj.ZfwMasqValue](m)
		if err != nil {
			return n, err
		}
		for _, e := range all {
			if idle(e.v.Tstamp, e.k.Proto) && m.Delete(&e.k) == nil {
				n++
			}
		}
	}
	reverse, err := readAll[bpfobj.ZfwMasqReverseKey, bpfobj.ZfwMasqReverseValue](objs.MasqueradeReverseMap)
	if err != nil {
		return n, err
	}
	for _, e := range reverse {
		if idle(e.v.Tstamp, e.k.Proto) {
			objs.MasqueradeReverseMap.Delete(&e.k)
		}
	}
	return n, nil
}

// entry is one key and value read from a map.
type entry[K, V any] struct {
	k K
	v V
}

// readAll reads every entry of a map. Callers that delete read the whole
// map first: deleting while iterating a hash map can restart the
// iteration.
func readAll[K, V any](m *ebpf.Map) ([]entry[K, V], error) {
	var (
		out []entry[K, V]
		k   K
		v   V
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		out = append(out, entry[K, V]{k, v})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("%s: iterate: %w", m, err)
	}
	return out, nil
}

// monotonic is the clock bpf_ktime_get_ns reads.
func monotonic() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// walk visits every session of both maps, with a function that deletes it.
func (ss *Sessions) walk(visit func(conntrack.Session, func() error) error) error {
	f := ss.f
	f.life.RLock()
	defer f.life.RUnlock()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	dp := f.dp
	timeouts := Timeouts(f.tbl.Timeouts)
	names := make(map[int]string, len(f.ifaces))
	for name, st := range f.ifaces {
		names[st.index] = name
	}
	f.mu.Unlock()
	if dp == nil {
		return nil
	}
	ifname := func(idx uint32) string {
		if n, ok := names[int(idx)]; ok {
			return n
		}
		return fmt.Sprintf("if%d", idx)
	}
	objs := dp.Objects()
	now := monotonic()
	base := func(k *bpfobj.ZfwTupleKey, tstamp uint64) conntrack.Session {
		s := conntrack.Session{
			Direction: conntrack.Outbound,
			Protocol:  protoOf(k.Proto),
			Interface: ifname(k.Ifindex),
			Client:    netip.AddrPortFrom(wire.AddrFrom(k.Src, k.Family), wire.PortFrom16(k.Sport)),
			Server:    netip.AddrPortFrom(wire.AddrFrom(k.Dst, k.Family), wire.PortFrom16(k.Dport)),
		}
		if now > tstamp {
			s.Idle = time.Duration(now - tstamp)
		}
		return s
	}

	// Each map is read whole before its first delete (see readAll).
	tcps, err := readAll[bpfobj.ZfwTupleKey, bpfobj.ZfwTcpState](objs.TcpMap)
	if err != nil {
		return err
	}
	for _, e := range tcps {
		s := base(&e.k, e.v.Tstamp)
		s.State, s.Expired = tcpState(e.v.Flags, s.Idle, timeouts)
		if err := visit(s, func() error { return objs.TcpMap.Delete(&e.k) }); err != nil {
			return err
		}
	}
	udps, err := readAll[bpfobj.ZfwTupleKey, bpfobj.ZfwUdpState](objs.UdpMap)
	if err != nil {
		return err
	}
	for _, e := range udps {
		s := base(&e.k, e.v.Tstamp)
		s.State, s.Expired = "active", s.Idle > timeouts.UDP
		if err := visit(s, func() error { return objs.UdpMap.Delete(&e.k) }); err != nil {
			return err
		}
	}
	for _, m := range []*ebpf.Map{objs.TcpIngressMap, objs.UdpIngressMap} {
		ins, err := readAll[bpfobj.ZfwTupleKey, bpfobj.ZfwInboundState](m)
		if err != nil {
			return err
		}
		for _, e := range ins {
			s := base(&e.k, e.v.Tcp.Tstamp)
			s.Direction = conntrack.Inbound
			s.TProxyPort = e.v.TproxyPort
			if s.Protocol == intercept.UDP {
				s.State, s.Expired = "active", s.Idle > timeouts.UDP
			} else {
				s.State, s.Expired = tcpState(e.v.Tcp.Flags, s.Idle, timeouts)
			}
			if err := visit(s, func() error { return m.Delete(&e.k) }); err != nil {
				return err
			}
		}
	}
	return nil
}

func tcpState(flags uint32, idle time.Duration, t Timeouts) (string, bool) {
	has := func(f bpfobj.ZfwTcpFlag) bool { return flags&uint32(f) != 0 }
	switch {
	case has(bpfobj.ZfwTcpFlagZFW_TCP_CFIN) || has(bpfobj.ZfwTcpFlagZFW_TCP_SFIN):
		return "closing", idle > t.TCPTransitory
	case has(bpfobj.ZfwTcpFlagZFW_TCP_EST):
		return "established", idle > t.TCPEstablished
	case has(bpfobj.ZfwTcpFlagZFW_TCP_SYN_ACK):
		return "answered", idle > t.TCPTransitory
	}
	return "opening", idle > t.TCPTransitory
}

// gcInterval is how often expired sessions are collected.
func gcInterval(t Timeouts) time.Duration {
	return min(t.UDP, t.TCPTransitory, 30*time.Second)
}

// collect runs garbage collection every d until stop is closed.
func (f *Firewall) collect(d time.Duration) {
	f.every(d, func() bool {
		n, err := f.Sessions().collectGarbage()
		switch {
		case errors.Is(err, ErrClosed):
			return false
		case err != nil:
			f.log.WithError(err).Warn("session garbage collection")
		case n > 0:
			f.log.WithField("removed", n).Debug("expired sessions collected")
		}
		return true
	})
}

// every runs fn every d until stop is closed or fn returns false.
func (f *Firewall) every(d time.Duration, fn func() bool) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
			if !fn() {
				return
			}
		}
	}
}
