package zfw

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/zfw/event"
)

// next waits for an event of kind, skipping others.
func next(t *testing.T, ch <-chan event.Event, kind event.Kind) event.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("event channel closed")
			}
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", kind)
		}
	}
}

// TestEventsReportDropsAndSessions triggers each event kind a test run
// can and reads it back through Events.
func TestEventsReportDropsAndSessions(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{DefaultDeny: true, Verbose: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := h.f.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A second reader, as a monitor beside the owner's log, gets every
	// event too.
	second, err := h.f.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if ev := next(t, second, event.Drop); ev.Reason != event.ReasonDefaultDeny {
			t.Errorf("the second reader's first drop: %+v", ev)
		}
	}()

	before := time.Now().Add(-time.Second)
	h.runFrame(packet.Build(tcpTo("10.9.0.5", 80)), 1)
	ev := next(t, ch, event.Drop)
	if ev.Reason != event.ReasonDefaultDeny || ev.Interface != "lo" || ev.Egress || ev.Protocol != packet.TCP ||
		ev.Dst.String() != "10.9.0.5:80" || ev.Src.String() != "192.168.7.10:40000" {
		t.Errorf("drop event %+v", ev)
	}
	if ev.Time.Before(before) || ev.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("event time %v is not now", ev.Time)
	}
	if ev.SrcMAC.String() != "02:00:00:00:00:01" || ev.DstMAC.String() != "02:00:00:00:00:02" {
		t.Errorf("MACs %s > %s", ev.SrcMAC, ev.DstMAC)
	}
	if s := ev.String(); !strings.Contains(s, " : lo : INGRESS : TCP :192.168.7.10:40000 > 10.9.0.5:80 | DROP: no rule (default deny)") {
		t.Errorf("formatted: %q", s)
	}

	h.egress(packet.Spec{Src: hostAddr, Dst: serverAddr, Proto: packet.TCP, SrcPort: 40000, DstPort: 443, TCPFlags: packet.SYN}, 1)
	ev = next(t, ch, event.Session)
	if !ev.Egress || ev.Src.String() != "10.50.0.1:40000" || ev.Session != event.OpenedOut {
		t.Errorf("session event %+v", ev)
	}
	// The server answers, the host acknowledges: established; then a RST.
	h.runFrame(packet.Build(packet.Spec{Src: serverAddr, Dst: hostAddr, Proto: packet.TCP, SrcPort: 443, DstPort: 40000, TCPFlags: packet.SYN | packet.ACK, Seq: 5000, Ack: 1001}), 1)
	h.egress(packet.Spec{Src: hostAddr, Dst: serverAddr, Proto: packet.TCP, SrcPort: 40000, DstPort: 443, TCPFlags: packet.ACK, Seq: 1001, Ack: 5001}, 1)
	if ev = next(t, ch, event.Session); ev.Session != event.Established {
		t.Errorf("after the handshake: %+v", ev)
	}
	h.runFrame(packet.Build(packet.Spec{Src: serverAddr, Dst: hostAddr, Proto: packet.TCP, SrcPort: 443, DstPort: 40000, TCPFlags: packet.RST, Seq: 5001}), 1)
	if ev = next(t, ch, event.Session); ev.Session != event.Reset || !strings.Contains(ev.String(), "session reset") {
		t.Errorf("after the RST: %+v (%s)", ev, ev)
	}

	h.add(steer("10.9.0.6/32", 80, 80, 7999))
	h.runFrame(packet.Build(tcpTo("10.9.0.6", 80)), 1)
	ev = next(t, ch, event.Drop)
	if ev.Reason != event.ReasonNoListener || ev.TProxyPort != 7999 {
		t.Errorf("no-listener drop %+v", ev)
	}

	cancel()
	for range ch {
	}
	// The reader is released: a new one may start.
	ch2, err := h.f.Events(context.Background())
	if err != nil {
		t.Fatalf("reader after the first ended: %v", err)
	}
	h.f.Close()
	for range ch2 {
	}
}

// TestEventRateLimit: a flood of drops yields at most the configured
// events per CPU and second; the rest are only counted.
func TestEventRateLimit(t *testing.T) {
	const limit = 5
	h := newHarnessWith(t, Options{EventsPerSecond: limit})
	h.manage("lo", InterfaceSettings{DefaultDeny: true, Verbose: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := h.f.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const flood = 2000
	frame := packet.Build(tcpTo("10.9.0.5", 80))
	start := time.Now()
	for range flood {
		h.runFrame(frame, 1)
	}
	elapsed := time.Since(start)
	// Windows are one second per CPU; the runs may span a few.
	windows := int(elapsed/time.Second) + 2
	allowed := limit * windows * h.cpus()
	got := 0
	drain := time.After(500 * time.Millisecond)
loop:
	for {
		select {
		case <-ch:
			got++
		case <-drain:
			break loop
		}
	}
	if got == 0 || got > allowed {
		t.Errorf("%d events delivered for %d drops; want 1..%d", got, flood, allowed)
	}
	if st := h.stats(); st.EventsLimited < uint64(flood-allowed) {
		t.Errorf("%d events counted as limited, want at least %d", st.EventsLimited, flood-allowed)
	}
}

// TestRuleHitsAreCounted: each decision a rule makes is counted, shown in
// the listing, and forgotten with the rule.
func TestRuleHitsAreCounted(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{})
	id := h.add(withProto(steer("10.9.0.5/32", 53, 53, 7400), "udp"))
	other := h.add(withAction(steer("10.9.0.0/24", 1, 65535, 0), Deny))
	for i := range 3 {
		s := udpTo("10.9.0.5", 53)
		s.SrcPort = uint16(30000 + i)
		h.run(s, 1)
	}
	hits := map[uint32]uint64{}
	for _, r := range h.f.Rules().List() {
		hits[r.ID] = r.Hits
	}
	if hits[id] != 3 || hits[other] != 0 {
		t.Errorf("hits %v, want %d: 3 and %d: 0", hits, id, other)
	}
	if err := h.f.Rules().Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if n := mapLen(t, h.f.dp.Objects().RuleHitsMap); n != 0 {
		t.Errorf("rule_hits_map holds %d entries after the rule went", n)
	}
}

// Every Events channel gets every event; one whose reader stops reading
// misses events once its buffer is full (Stats.EventsUnread) and holds
// back no other; with every channel closed, a new one can be opened.
func TestEventsReachEveryReaderAndASlowOneHoldsBackNone(t *testing.T) {
	h := newHarnessWith(t, Options{EventsPerSecond: 1 << 20})
	h.manage("lo", InterfaceSettings{DefaultDeny: true, Verbose: true})
	ctx, cancel := context.WithCancel(context.Background())
	stalled, err := h.f.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reading, err := h.f.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int)
	go func() {
		n := 0
		for ev := range reading {
			if ev.Kind == event.Drop {
				n++
			}
		}
		got <- n
	}()
	const sent = eventBuffer + 500
	frame := packet.Build(tcpTo("10.9.0.5", 80))
	for range sent {
		h.runFrame(frame, 1)
	}
	st := h.stats()
	delivered := sent - int(st.EventsLost) // what the ring buffer held for the reader
	deadline := time.Now().Add(10 * time.Second)
	for h.stats().EventsUnread < uint64(delivered-eventBuffer) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(stalled) != eventBuffer {
		t.Errorf("the stalled reader holds %d events, want its buffer full (%d)", len(stalled), eventBuffer)
	}
	if unread := h.stats().EventsUnread; unread != uint64(delivered-eventBuffer) {
		t.Errorf("EventsUnread = %d, want %d (%d sent, %d lost in the ring buffer)", unread, delivered-eventBuffer, sent, st.EventsLost)
	}
	cancel()
	if n := <-got; n != delivered {
		t.Errorf("the reading reader got %d drops, want all %d", n, delivered)
	}
	for range stalled { // closed too
	}
	again, err := h.f.Events(context.Background())
	if err != nil {
		t.Fatalf("Events after every reader left: %v", err)
	}
	h.runFrame(frame, 1)
	next(t, again, event.Drop)
}
