package zfw

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/zfw/ddos"
	"github.com/zfw-go/zfw/zfw/event"
)

// TestSYNFloodBansTheSource walks a source over the SYN threshold.
func TestSYNFloodBansTheSource(t *testing.T) {
	const limit = 20
	h := newHarnessWith(t, Options{SYNFlood: ddos.SYNFlood{SYNsPerSecond: limit, BanDuration: time.Hour}})
	h.manage("lo", InterfaceSettings{DDoSProtection: true, Verbose: true})
	events, err := h.f.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	attacker, other := addr("192.168.9.9"), addr("192.168.9.10")
	syn := func(src string, port uint16, sport uint16) uint32 {
		s := packet.Spec{Src: addr(src), Dst: addr("10.9.0.5"), Proto: packet.TCP, SrcPort: sport, DstPort: port, TCPFlags: packet.SYN}
		return h.runFrame(packet.Build(s), 1).code
	}
	for i := range limit {
		if code := syn(attacker.String(), 80, uint16(20000+i)); code != tcOK {
			t.Fatalf("SYN %d under the threshold: code %d", i, code)
		}
	}
	if code := syn(attacker.String(), 80, 30000); code != tcShot {
		t.Fatalf("SYN over the threshold: code %d, want drop", code)
	}
	if ev := next(t, events, event.Ban); ev.Src.Addr() != attacker || !strings.Contains(ev.String(), "SYN flood") {
		t.Errorf("ban event %+v", ev)
	}
	udp := packet.Spec{Src: attacker, Dst: addr("10.9.0.5"), Proto: packet.UDP, SrcPort: 5, DstPort: 53}
	if code := h.runFrame(packet.Build(udp), 1).code; code != tcShot {
		t.Errorf("banned source's UDP: code %d, want drop", code)
	}
	if code := syn(other.String(), 80, 20000); code != tcOK {
		t.Errorf("another source: code %d", code)
	}
	var bans []ddos.Ban
	bans, err = h.f.DDoS().Bans()
	if err != nil || len(bans) != 1 || bans[0].Source != attacker || !bans[0].Until.After(time.Now().Add(50*time.Minute)) {
		t.Fatalf("bans %+v, %v", bans, err)
	}
	if err := h.f.DDoS().Unban(context.Background(), attacker); err != nil {
		t.Fatal(err)
	}
	if code := syn(attacker.String(), 80, 31000); code != tcOK {
		t.Errorf("after unban: code %d", code)
	}
	if err := h.f.DDoS().Unban(context.Background(), attacker); err == nil {
		t.Error("unban of a source without a ban succeeded")
	}

	t.Run("only protected ports count", func(t *testing.T) {
		if err := h.f.DDoS().ProtectPorts(context.Background(), 443); err != nil {
			t.Fatal(err)
		}
		defer h.f.DDoS().UnprotectPorts(context.Background(), 443)
		src := "192.168.9.20"
		for i := range 2 * limit {
			if code := syn(src, 80, uint16(20000+i)); code != tcOK {
				t.Fatalf("SYN %d to an unprotected port: code %d", i, code)
			}
		}
		for i := range limit {
			syn(src, 443, uint16(40000+i))
		}
		if code := syn(src, 443, 50000); code != tcShot {
			t.Errorf("SYN flood to a protected port: code %d, want drop", code)
		}
		if ports, _ := h.f.DDoS().ProtectedPorts(); len(ports) != 1 || ports[0] != 443 {
			t.Errorf("protected ports %v", ports)
		}
	})
	if st := h.stats(); st.Bans != 2 || st.Banned < 3 {
		t.Errorf("stats bans %d banned %d", st.Bans, st.Banned)
	}
}

func TestBansEnd(t *testing.T) {
	h := newHarnessWith(t, Options{SYNFlood: ddos.SYNFlood{SYNsPerSecond: 1, BanDuration: time.Millisecond}})
	h.manage("lo", InterfaceSettings{DDoSProtection: true})
	s := packet.Spec{Src: addr("192.168.9.9"), Dst: addr("10.9.0.5"), Proto: packet.TCP, SrcPort: 1000, DstPort: 80, TCPFlags: packet.SYN}
	h.runFrame(packet.Build(s), 1)
	s.SrcPort++
	if code := h.runFrame(packet.Build(s), 1).code; code != tcShot {
		t.Fatalf("second SYN: code %d, want the ban", code)
	}
	time.Sleep(5 * time.Millisecond)
	s.SrcPort++
	if code := h.runFrame(packet.Build(s), 1).code; code != tcOK {
		t.Errorf("after the ban ended: code %d", code)
	}
}

// TestDDoSAllowListGatesProtectedPorts: with ports protected and any
// source on the allow-list, only listed sources open connections to
// those ports, and none of their SYNs counts towards a ban; other ports,
// packets of open connections, and every port while none is protected
// are not gated; the last source off the list brings the threshold back.
func TestDDoSAllowListGatesProtectedPorts(t *testing.T) {
	const limit = 5
	ctx := context.Background()
	h := newHarnessWith(t, Options{SYNFlood: ddos.SYNFlood{SYNsPerSecond: limit, BanDuration: time.Hour}})
	h.manage("lo", InterfaceSettings{DDoSProtection: true, Verbose: true})
	events, err := h.f.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	friend, stranger := addr("192.168.7.1"), addr("192.168.7.2")
	send := func(src string, port, sport uint16, flags uint8) uint32 {
		s := packet.Spec{Src: addr(src), Dst: addr("10.9.0.5"), Proto: packet.TCP, SrcPort: sport, DstPort: port, TCPFlags: flags}
		return h.runFrame(packet.Build(s), 1).code
	}
	d := h.f.DDoS()
	if err := d.AllowSources(ctx, friend, friend); err != nil {
		t.Fatal(err)
	}
	// No port protected: the list gates nothing.
	if code := send(stranger.String(), 443, 1000, packet.SYN); code != tcOK {
		t.Fatalf("stranger's SYN with no port protected: code %d, want pass", code)
	}
	if err := d.ProtectPorts(ctx, 443); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		src   netip.Addr
		port  uint16
		flags uint8
		want  uint32
	}{
		{"a listed source's SYN", friend, 443, packet.SYN, tcOK},
		{"a stranger's SYN to the protected port", stranger, 443, packet.SYN, tcShot},
		{"a stranger's SYN to another port", stranger, 80, packet.SYN, tcOK},
		{"a stranger's packet of an open connection", stranger, 443, packet.ACK, tcOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := send(tc.src.String(), tc.port, 2000, tc.flags); code != tc.want {
				t.Errorf("code %d, want %d", code, tc.want)
			}
		})
	}
	if ev := next(t, events, event.Drop); ev.Src.Addr() != stranger || ev.Reason != event.ReasonNotAllowed || !strings.Contains(ev.String(), "allow-list") {
		t.Errorf("drop event %+v (%s), want the stranger's, not on the allow-list", ev, ev)
	}
	// A listed source is never counted: far over the threshold, no ban.
	for i := range 4 * limit {
		if code := send(friend.String(), 443, uint16(3000+i), packet.SYN); code != tcOK {
			t.Fatalf("listed source's SYN %d: code %d, want pass", i, code)
		}
	}
	if got, err := d.AllowedSources(); err != nil || len(got) != 1 || got[0] != friend {
		t.Errorf("AllowedSources = %v, %v; want [%s]", got, err, friend)
	}
	if st := h.stats(); st.NotAllowed != 1 || st.Bans != 0 {
		t.Errorf("stats: NotAllowed %d, Bans %d; want 1 and 0", st.NotAllowed, st.Bans)
	}
	// The last source off: the threshold counts again, strangers pass.
	if err := d.DisallowSources(ctx, friend, stranger); err != nil {
		t.Fatal(err)
	}
	if code := send(stranger.String(), 443, 4000, packet.SYN); code != tcOK {
		t.Errorf("stranger's SYN with the list empty: code %d, want pass", code)
	}
	if got, err := d.AllowedSources(); err != nil || len(got) != 0 {
		t.Errorf("AllowedSources after removal = %v, %v", got, err)
	}
}

// A change of several values is all or nothing: ports that do not all
// fit ddos_dport_map (1,024 entries) are refused with a LimitError and
// none of them is left protected, and the count the program reads from
// config_map stays that of the ports protected before.
func TestDDoSChangeIsAllOrNothing(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	d := h.f.DDoS()
	if err := d.ProtectPorts(ctx, 80); err != nil {
		t.Fatal(err)
	}
	ports := make([]uint16, 1024)
	for i := range ports {
		ports[i] = uint16(81 + i)
	}
	err := d.ProtectPorts(ctx, ports...)
	var limit *LimitError
	if !errors.As(err, &limit) || limit.Limit != "ddos_dport_map" {
		t.Fatalf("protecting 1,025 ports: err = %v, want a LimitError of ddos_dport_map", err)
	}
	if got, err := d.ProtectedPorts(); err != nil || !slices.Equal(got, []uint16{80}) {
		t.Errorf("protected after the refused change: %v, %v; want [80]", got, err)
	}
	var cfg bpfobj.ZfwConfig
	if err := h.f.tbl.Maps.Config.Lookup(uint32(0), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ProtectedPorts != 1 {
		t.Errorf("config_map counts %d protected ports, want 1", cfg.ProtectedPorts)
	}
	// Taking off ports that are not all protected is no error, and
	// takes off those that are.
	if err := d.UnprotectPorts(ctx, 80, 81); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.ProtectedPorts(); len(got) != 0 {
		t.Errorf("protected after unprotecting: %v", got)
	}
}
