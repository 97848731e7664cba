package zfw

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/internal/packet"
)

// TestSYNFloodBansTheSource walks a source over the SYN threshold.
func TestSYNFloodBansTheSource(t *testing.T) {
	const limit = 20
	h := newHarnessWith(t, Options{SYNFlood: SYNFlood{SYNsPerSecond: limit, BanDuration: time.Hour}})
	h.manage("lo", InterfaceSettings{DDoSProtection: true, Verbose: true})
	events, err := h.f.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	attacker, other := addr("192.168.9.9"), addr("192.168.9.10")
	syn := func(src string, port uint16, sport uint16) uint32 {
		s := packet.Spec{Src: addr(src), Dst: addr("10.9.0.5"), Proto: packet.TCP, SrcPort: sport, DstPort: port, TCPFlags: packet.SYN}
		return h.runFrame(packet.Build(s), packet.Spec{}, 1).code
	}
	for i := range limit {
		if code := syn(attacker.String(), 80, uint16(20000+i)); code != tcOK {
			t.Fatalf("SYN %d under the threshold: code %d", i, code)
		}
	}
	if code := syn(attacker.String(), 80, 30000); code != tcShot {
		t.Fatalf("SYN over the threshold: code %d, want drop", code)
	}
	if ev := next(t, events, EventBan); ev.Src.Addr() != attacker || !strings.Contains(ev.String(), "SYN flood") {
		t.Errorf("ban event %+v", ev)
	}
	udp := packet.Spec{Src: attacker, Dst: addr("10.9.0.5"), Proto: packet.UDP, SrcPort: 5, DstPort: 53}
	if code := h.runFrame(packet.Build(udp), packet.Spec{}, 1).code; code != tcShot {
		t.Errorf("banned source's UDP: code %d, want drop", code)
	}
	if code := syn(other.String(), 80, 20000); code != tcOK {
		t.Errorf("another source: code %d", code)
	}
	var bans []Ban
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
	h := newHarnessWith(t, Options{SYNFlood: SYNFlood{SYNsPerSecond: 1, BanDuration: time.Millisecond}})
	h.manage("lo", InterfaceSettings{DDoSProtection: true})
	s := packet.Spec{Src: addr("192.168.9.9"), Dst: addr("10.9.0.5"), Proto: packet.TCP, SrcPort: 1000, DstPort: 80, TCPFlags: packet.SYN}
	h.runFrame(packet.Build(s), packet.Spec{}, 1)
	s.SrcPort++
	if code := h.runFrame(packet.Build(s), packet.Spec{}, 1).code; code != tcShot {
		t.Fatalf("second SYN: code %d, want the ban", code)
	}
	time.Sleep(5 * time.Millisecond)
	s.SrcPort++
	if code := h.runFrame(packet.Build(s), packet.Spec{}, 1).code; code != tcOK {
		t.Errorf("after the ban ended: code %d", code)
	}
}
