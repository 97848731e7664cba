package zfw

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/wire"
	"github.com/zfw-go/zfw/zfw/event"
)

// eventReader is the one consumer of rb_map; it hands every event to
// each of the Events channels open at the time.
type eventReader struct {
	rd   *ringbuf.Reader
	done sync.WaitGroup // the read loop and the subscribers' watchers

	mu     sync.Mutex // guards subs and names; held while an event is handed out
	subs   map[chan event.Event]struct{}
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
func (f *Firewall) Events(ctx context.Context) (<-chan event.Event, error) {
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
		er = &eventReader{rd: rd, subs: make(map[chan event.Event]struct{}), names: make(map[uint32]string),
			offset: time.Now().UnixNano() - int64(monotonic())}
		f.events = er
		er.done.Add(1)
		go f.readEvents(er)
	}
	names := make(map[uint32]string, len(f.ifaces))
	for name, st := range f.ifaces {
		names[uint32(st.index)] = name
	}
	ch := make(chan event.Event, eventBuffer)
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
func (f *Firewall) unsubscribe(er *eventReader, ch chan event.Event) {
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

func decodeEvent(raw []byte, offset int64, name func(ifindex uint32) string) (event.Event, bool) {
	var e bpfobj.ZfwEvent
	if _, err := binary.Decode(raw, binary.NativeEndian, &e); err != nil || e.Version != uint8(bpfobj.ZfwEventVersionZFW_EVENT_VERSION) {
		return event.Event{}, false
	}
	ifname := name(e.Ifindex)
	ev := event.Event{
		Time:       time.Unix(0, int64(e.Tstamp)+offset),
		Kind:       event.Kind(e.Kind),
		Interface:  ifname,
		Egress:     e.Direction == 1,
		Protocol:   e.Proto,
		Src:        netip.AddrPortFrom(wire.AddrFrom(e.Saddr, e.Family), wire.PortFrom16(e.Sport)),
		Dst:        netip.AddrPortFrom(wire.AddrFrom(e.Daddr, e.Family), wire.PortFrom16(e.Dport)),
		TCPFlags:   e.TcpFlags,
		RuleID:     e.RuleId,
		TProxyPort: e.TproxyPort,
		Reason:     event.Reason(e.Reason),
		Session:    event.Change(e.Tracking),
	}
	if !bytes.Equal(e.Smac[:], make([]byte, 6)) {
		ev.SrcMAC = net.HardwareAddr(bytes.Clone(e.Smac[:]))
		ev.DstMAC = net.HardwareAddr(bytes.Clone(e.Dmac[:]))
	}
	return ev, true
}
