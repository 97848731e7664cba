package zfw

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/internal/wire"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds. The values are the dataplane's own (enum zfw_event_kind in
// bpf/zfw.h).
const (
	// EventDrop: a packet was dropped; Reason says why.
	EventDrop EventKind = 1
	// EventSteer: a new flow was handed to its TPROXY listener.
	EventSteer EventKind = 2
	// EventSession: a tracked session changed state; Event.Session says
	// how.
	EventSession EventKind = 3
	// EventBan: a source was banned for flooding SYNs.
	EventBan EventKind = 4
)

func (k EventKind) String() string {
	switch k {
	case EventDrop:
		return "drop"
	case EventSteer:
		return "steer"
	case EventSession:
		return "session"
	case EventBan:
		return "ban"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// SessionChange is what happened to a tracked session.
type SessionChange uint8

// Session changes, the dataplane's values (enum zfw_track).
const (
	SessionOpenedOut   SessionChange = 1
	SessionOpenedIn    SessionChange = 2
	SessionEstablished SessionChange = 3
	SessionClosed      SessionChange = 4
	SessionReset       SessionChange = 5
	SessionExpired     SessionChange = 6
)

func (c SessionChange) String() string {
	switch c {
	case SessionOpenedOut:
		return "opened outwards"
	case SessionOpenedIn:
		return "opened inwards"
	case SessionEstablished:
		return "established"
	case SessionClosed:
		return "closed"
	case SessionReset:
		return "reset"
	case SessionExpired:
		return "expired"
	}
	return fmt.Sprintf("change(%d)", uint8(c))
}

// DropReason says why a packet was dropped.
type DropReason uint8

// Drop reasons, the dataplane's values (enum zfw_reason); zero is none.
const (
	ReasonMalformed    DropReason = 1
	ReasonRuleDeny     DropReason = 2
	ReasonDefaultDeny  DropReason = 3
	ReasonFragment     DropReason = 4
	ReasonNoListener   DropReason = 5
	ReasonAssignFailed DropReason = 6
	ReasonBanned       DropReason = 7
	ReasonDNP3Blocked  DropReason = 8
	ReasonDNP3Dir      DropReason = 9
	ReasonModbus       DropReason = 10
	ReasonMasquerade   DropReason = 11
	ReasonNotAllowed   DropReason = 12
)

func (r DropReason) String() string {
	switch r {
	case 0:
		return ""
	case ReasonMalformed:
		return "malformed"
	case ReasonRuleDeny:
		return "denied by rule"
	case ReasonDefaultDeny:
		return "no rule (default deny)"
	case ReasonFragment:
		return "fragment"
	case ReasonNoListener:
		return "no TPROXY listener"
	case ReasonAssignFailed:
		return "socket assign failed"
	case ReasonBanned:
		return "source banned (SYN flood)"
	case ReasonDNP3Blocked:
		return "DNP3 function code blocked"
	case ReasonDNP3Dir:
		return "DNP3 direction bit set"
	case ReasonModbus:
		return "Modbus response without a request"
	case ReasonMasquerade:
		return "masquerade translation failed"
	case ReasonNotAllowed:
		return "source not on the DDoS allow-list"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Event is one dataplane event. Interfaces emit events only when set
// Verbose, and at most Options.EventsPerSecond per CPU.
type Event struct {
	Time      time.Time
	Kind      EventKind
	Interface string
	// Egress is true for events of packets leaving the interface.
	Egress bool
	// Protocol is the IP protocol number (6 TCP, 17 UDP, …).
	Protocol   uint8
	Src, Dst   netip.AddrPort
	TCPFlags   uint8
	Action     Action
	RuleID     uint32
	TProxyPort uint16
	Reason     DropReason
	// Session is what changed, for EventSession.
	Session SessionChange
	// SrcMAC and DstMAC are the frame's, when it has an Ethernet header.
	SrcMAC, DstMAC net.HardwareAddr
}

// String formats the event like `zfw -M`:
//
//	Nov 29 2026 04:12:33.123456789 : eth0 : INGRESS : TCP :10.0.0.2:40000 > 10.9.0.5:80 | tproxy ---> 127.0.0.1:7000
func (e Event) String() string {
	var b strings.Builder
	dir := "INGRESS"
	if e.Egress {
		dir = "EGRESS"
	}
	fmt.Fprintf(&b, "%s : %s : %s : %s :%s > %s", e.Time.Format("Jan 02 2006 15:04:05.000000000"),
		e.Interface, dir, protoLabel(e.Protocol), e.Src, e.Dst)
	switch e.Kind {
	case EventSteer:
		lo := "127.0.0.1"
		if e.Dst.Addr().Is6() {
			lo = "::1"
		}
		fmt.Fprintf(&b, " | tproxy ---> %s", net.JoinHostPort(lo, fmt.Sprint(e.TProxyPort)))
	case EventDrop:
		fmt.Fprintf(&b, " | DROP: %s", e.Reason)
		if e.RuleID != 0 {
			fmt.Fprintf(&b, " (rule %d)", e.RuleID)
		}
	case EventSession:
		fmt.Fprintf(&b, " | session %s", e.Session)
	case EventBan:
		b.WriteString(" | SYN flood: source banned")
	default:
		fmt.Fprintf(&b, " | %s", e.Kind)
	}
	return b.String()
}

func protoLabel(p uint8) string {
	switch p {
	case policy.ProtoTCP:
		return "TCP"
	case policy.ProtoUDP:
		return "UDP"
	case 1:
		return "ICMP"
	case 58:
		return "ICMPv6"
	}
	return fmt.Sprintf("PROTO%d", p)
}

// eventReader is the one consumer of rb_map; it hands every event to
// each of the Events channels open at the time.
type eventReader struct {
	rd   *ringbuf.Reader
	done sync.WaitGroup // the read loop and the subscribers' watchers

	mu     sync.Mutex // guards subs and names; held while an event is handed out
	subs   map[chan Event]struct{}
	names  map[uint32]string
	offset int64 // CLOCK_MONOTONIC to wall clock, ns
}

// eventBuffer is how many events a reader may fall behind before it
// misses some (Stats.EventsUnread counts them).
const eventBuffer = 4096

// Events delivers the dataplane's events until ctx ends (or the firewall
// closes); then the channel is closed. Every open channel gets every
// event, so a monitor can watch while the owner logs: a reader that falls
// eventBuffer events behind misses what comes next (counted in
// Stats.EventsUnread) rather than holding back the others.
func (f *Firewall) Events(ctx context.Context) (<-chan Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	objs, err := f.kernel(ctx, "events")
	if err != nil {
		return nil, err
	}
	er := f.events
	if er == nil {
		rd, err := ringbuf.NewReader(objs.RbMap)
		if err != nil {
			return nil, fmt.Errorf("events: open rb_map: %w", err)
		}
		// Kernel timestamps are CLOCK_MONOTONIC.
		er = &eventReader{rd: rd, subs: make(map[chan Event]struct{}), names: make(map[uint32]string),
			offset: time.Now().UnixNano() - int64(monotonic())}
		f.events = er
		er.done.Add(1)
		go f.readEvents(er)
	}
	names := make(map[uint32]string, len(f.ifaces))
	for name, st := range f.ifaces {
		names[uint32(st.index)] = name
	}
	ch := make(chan Event, eventBuffer)
	er.mu.Lock()
	er.names = names // the interfaces as they are now
	er.subs[ch] = struct{}{}
	er.mu.Unlock()
	er.done.Add(1)
	go func() {
		defer er.done.Done()
		select {
		case <-ctx.Done():
		case <-f.stop:
		}
		f.unsubscribe(er, ch)
	}()
	return ch, nil
}

// name is the name of interface ifindex: the one this Firewall attached,
// or else the system's (a RulesOnly Firewall attaches none), remembered.
// er.mu must be held.
func (er *eventReader) name(ifindex uint32) string {
	if n, ok := er.names[ifindex]; ok {
		return n
	}
	n := fmt.Sprintf("if%d", ifindex)
	if ifc, err := net.InterfaceByIndex(int(ifindex)); err == nil {
		n = ifc.Name
	}
	er.names[ifindex] = n
	return n
}

// unsubscribe closes one Events channel; with the last one gone, the
// reader stops, leaving later events in the ring buffer.
func (f *Firewall) unsubscribe(er *eventReader, ch chan Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	er.mu.Lock()
	delete(er.subs, ch)
	close(ch)
	last := len(er.subs) == 0
	er.mu.Unlock()
	if last && f.events == er {
		f.events = nil
		er.rd.Close()
	}
}

// readEvents is er's read loop: until its reader closes, each event goes
// to every subscriber with room for it.
func (f *Firewall) readEvents(er *eventReader) {
	defer er.done.Done()
	for {
		rec, err := er.rd.Read()
		if err != nil {
			if !errors.Is(err, ringbuf.ErrClosed) {
				f.log.WithError(err).Warn("events: read rb_map")
			}
			return
		}
		er.mu.Lock()
		ev, ok := decodeEvent(rec.RawSample, er.offset, er.name)
		if ok {
			for ch := range er.subs {
				select {
				case ch <- ev:
				default:
					f.eventsUnread.Add(1)
				}
			}
		}
		er.mu.Unlock()
	}
}

func decodeEvent(raw []byte, offset int64, name func(ifindex uint32) string) (Event, bool) {
	var e bpfobj.ZfwEvent
	if _, err := binary.Decode(raw, binary.NativeEndian, &e); err != nil || e.Version != uint8(bpfobj.ZfwEventVersionZFW_EVENT_VERSION) {
		return Event{}, false
	}
	ifname := name(e.Ifindex)
	ev := Event{
		Time:       time.Unix(0, int64(e.Tstamp)+offset),
		Kind:       EventKind(e.Kind),
		Interface:  ifname,
		Egress:     e.Direction == 1,
		Protocol:   e.Proto,
		Src:        netip.AddrPortFrom(wire.AddrFrom(e.Saddr, e.Family), wire.PortFrom16(e.Sport)),
		Dst:        netip.AddrPortFrom(wire.AddrFrom(e.Daddr, e.Family), wire.PortFrom16(e.Dport)),
		TCPFlags:   e.TcpFlags,
		Action:     Action(e.Action),
		RuleID:     e.RuleId,
		TProxyPort: e.TproxyPort,
		Reason:     DropReason(e.Reason),
		Session:    SessionChange(e.Tracking),
	}
	if !bytes.Equal(e.Smac[:], make([]byte, 6)) {
		ev.SrcMAC = net.HardwareAddr(bytes.Clone(e.Smac[:]))
		ev.DstMAC = net.HardwareAddr(bytes.Clone(e.Dmac[:]))
	}
	return ev, true
}
