package zfw_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/ddos"
	"github.com/zfw-go/zfw/zfw/event"
)

// TestEndToEndSteerEvents: a verbose interface reports each steered
// connection.
func TestEndToEndSteerEvents(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{Interfaces: []zfw.Interface{{Name: topo.RouterClientIf, InterfaceSettings: zfw.InterfaceSettings{Verbose: true}}}})
	ln := echoTCP(t, topo.Router, "127.0.0.1:0")
	if err := r.fw.Register(context.Background(), tcpIntercept("ev", "10.92.0.0/24", 80, ln)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := r.fw.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := topo.Client.DialTCP("10.92.0.9:80", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Kind != event.Steer {
				continue
			}
			if ev.Dst.String() != "10.92.0.9:80" || ev.TProxyPort != ln.Port() || ev.Interface != topo.RouterClientIf {
				t.Errorf("steer event %+v", ev)
			}
			if !strings.Contains(ev.String(), "| tproxy ---> 127.0.0.1:") {
				t.Errorf("formatted: %s", ev)
			}
			return
		case <-timeout:
			t.Fatal("no steer event")
		}
	}
}

// TestEndToEndSYNFlood: a SYN flood from one namespace (bounded: 400
// SYNs) gets its source banned while another client's established
// session keeps passing data.
func TestEndToEndSYNFlood(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	protected := zfw.InterfaceSettings{DDoSProtection: true}
	r := newRouter(t, topo, zfw.Options{
		Interfaces: []zfw.Interface{{Name: topo.RouterClientIf, InterfaceSettings: protected}, {Name: topo.RouterServerIf, InterfaceSettings: protected}},
		SYNFlood:   ddos.SYNFlood{SYNsPerSecond: 50, BanDuration: time.Hour},
	})
	echoTCP(t, topo.Router, "0.0.0.0:9999")
	// The legitimate client (the server namespace) connects first.
	legit, err := topo.Server.DialTCP(netip.AddrPortFrom(topo.RouterServerAddr4.Addr(), 9999).String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer legit.Close()
	if _, err := testenv.AskLine(legit, "before"); err != nil {
		t.Fatal(err)
	}

	// The flood: raw SYNs from the client namespace.
	var raw net.PacketConn
	if err := topo.Client.Do(func() error {
		var err error
		raw, err = net.ListenPacket("ip4:tcp", topo.ClientAddr4.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	dst := topo.RouterClientAddr4.Addr()
	for i := range 400 {
		frame := packet.Build(packet.Spec{Src: topo.ClientAddr4.Addr(), Dst: dst, Proto: packet.TCP, SrcPort: uint16(20000 + i), DstPort: 9999, TCPFlags: packet.SYN})
		tcpHeader := frame[14+20:]
		if _, err := raw.WriteTo(tcpHeader, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			t.Fatalf("SYN %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		bans, err := r.fw.DDoS().Bans()
		if err != nil {
			t.Fatal(err)
		}
		if len(bans) == 1 && bans[0].Source == topo.ClientAddr4.Addr() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flooding source not banned: %+v", bans)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 5 {
		if got, err := testenv.AskLine(legit, fmt.Sprintf("during%d", i)); err != nil || !strings.HasPrefix(got, fmt.Sprintf("during%d", i)) {
			t.Fatalf("established session during the flood: %q, %v", got, err)
		}
	}
	refused(t, topo.Client, netip.AddrPortFrom(dst, 9999).String(), time.Second, "the banned source could still connect")
	if st, _ := r.fw.Stats(); st.Banned == 0 {
		t.Errorf("stats %+v: want banned packets", st)
	}
}
