package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// zfw -L -G lists the sessions the dataplane tracks: here the UDP
// session a datagram leaving a default-deny interface opened.
func TestListSessionsShowsTrackedSessions(t *testing.T) {
	p := newPlace(t)
	ns := testenv.NewTestNamespace(t, "gc")
	var fw *zfw.Firewall
	if err := ns.Do(func() error {
		var err error
		fw, err = zfw.New(zfw.Options{PinPath: p.pin, Interfaces: []zfw.Interface{
			{Name: "lo", InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true}},
		}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	p.serve(t, fw)
	if out := p.must(t, "-L -G"); !strings.Contains(out, "sessions: 0") {
		t.Errorf("-L -G before any traffic:\n%s", out)
	}
	var client string
	if err := ns.Do(func() error {
		c, err := net.Dial("udp", "127.0.0.1:9")
		if err != nil {
			return err
		}
		defer c.Close()
		client = c.LocalAddr().String()
		_, err = c.Write([]byte("x"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"outbound", "udp", "lo", client, "127.0.0.1:9", "sessions: 1"}
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out = p.must(t, "-L -G"); strings.Contains(out, client) {
			break
		}
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("-L -G lacks %q:\n%s", w, out)
		}
	}
}
