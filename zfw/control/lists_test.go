package control

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// kernelFirewall is a Firewall on kernel maps, pinned for the test only.
func kernelFirewall(t *testing.T) *zfw.Firewall {
	t.Helper()
	testenv.RequirePrivileged(t)
	pin := testenv.PinPath(t, "ctl")
	fw, err := zfw.New(zfw.Options{PinPath: pin, MaxRules: 1024, MaxPrefixes: 256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fw.Close()
		os.RemoveAll(pin)
	})
	return fw
}

// Each list reads back what SetMember put in and took out, through the
// socket as through Local, with members written as the C zfw's options
// take them.
func TestListsKeepWhatIsSetAndRemoved(t *testing.T) {
	for _, tc := range []struct {
		list       string
		add        []string
		remove     string
		want, left []string
	}{
		{ListDDoSPorts, []string{"443", "80", "443"}, "80", []string{"80", "443"}, []string{"443"}},
		{ListDDoSSources, []string{"192.168.1.9", "fd00::9"}, "fd00::9", []string{"192.168.1.9", "fd00::9"}, []string{"192.168.1.9"}},
		{ListDNP3Codes, []string{"1", "0x81"}, "1", []string{"1", "129"}, []string{"129"}},
	} {
		for _, how := range []string{"local", "socket"} {
			t.Run(tc.list+"/"+how, func(t *testing.T) {
				fw := kernelFirewall(t)
				var c Controller = NewLocal(fw)
				if how == "socket" {
					c, _ = serve(t, fw)
				}
				ctx := context.Background()
				members := func() []string {
					t.Helper()
					got, err := c.Members(ctx, tc.list)
					if err != nil {
						t.Fatal(err)
					}
					return got
				}
				if got := members(); len(got) != 0 {
					t.Fatalf("a new dataplane's %s: %q", tc.list, got)
				}
				for _, m := range tc.add {
					if err := c.SetMember(ctx, tc.list, m, true); err != nil {
						t.Fatalf("add %s: %v", m, err)
					}
				}
				if got := members(); !slices.Equal(got, tc.want) {
					t.Errorf("after adding %q: %q, want %q", tc.add, got, tc.want)
				}
				for range 2 { // the second removal finds nothing, and is no error
					if err := c.SetMember(ctx, tc.list, tc.remove, false); err != nil {
						t.Fatalf("remove %s: %v", tc.remove, err)
					}
				}
				if got := members(); !slices.Equal(got, tc.left) {
					t.Errorf("after removing %s: %q, want %q", tc.remove, got, tc.left)
				}
			})
		}
	}
}

func TestListsRefuseWhatTheyCannotHold(t *testing.T) {
	fw := kernelFirewall(t)
	c, _ := serve(t, fw)
	ctx := context.Background()
	for _, tc := range []struct {
		list, member string
		on           bool
		want         string
	}{
		{ListDDoSPorts, "0", true, `port "0": 1 to 65535`},
		{ListDDoSPorts, "http", true, `port "http"`},
		{ListDDoSSources, "10.0.0.0/8", true, `source "10.0.0.0/8": not an IPv4 or IPv6 address`},
		{ListDNP3Codes, "256", true, `function code "256": 0 to 255`},
		{ListDDoSBans, "10.0.0.1", true, "the dataplane adds to this list itself"},
		{ListDDoSBans, "10.0.0.1", false, "not found"},
		{ListBindSources, "10.0.0.1", true, `prefix "10.0.0.1": not an IPv4 or IPv6 prefix`},
		{ListBindSources, "0.0.0.0/0", true, "/0"},
		{"bind-addr", "10.0.0.1/32", true, `list "bind-addr": not one of`},
	} {
		err := c.SetMember(ctx, tc.list, tc.member, tc.on)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetMember(%s, %s, %v) = %v, want an error saying %q", tc.list, tc.member, tc.on, err, tc.want)
		}
	}
	if got, err := c.Members(ctx, ListDDoSBans); err != nil || len(got) != 0 {
		t.Errorf("bans of a new dataplane: %q, %v", got, err)
	}
}
