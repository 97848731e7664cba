package zfw

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/testenv"
)

func TestRulesOnlyFailsWithoutADataplane(t *testing.T) {
	testenv.RequirePrivileged(t)
	pin := testenv.PinPath(t, "ro")
	fw, err := New(Options{PinPath: pin, RulesOnly: true})
	if err == nil {
		fw.Close()
		os.RemoveAll(pin)
		t.Fatal("RulesOnly New created a dataplane")
	}
	if !errors.Is(err, ErrNoDataplane) {
		t.Errorf("error %v, want ErrNoDataplane", err)
	}
	if _, err := os.Stat(pin); !os.IsNotExist(err) {
		os.RemoveAll(pin)
		t.Errorf("pin folder %s left behind (%v)", pin, err)
	}
}

func TestRulesOnlyOptionsAreChecked(t *testing.T) {
	for _, o := range []Options{
		{RulesOnly: true, InMemory: true},
		{RulesOnly: true, Interfaces: []Interface{{Name: "eth0"}}},
	} {
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("withDefaults(%+v) accepted", o)
		}
	}
	o, err := Options{RulesOnly: true}.withDefaults()
	if err != nil || !o.KeepOnClose {
		t.Errorf("RulesOnly without KeepOnClose: %+v, %v", o, err)
	}
}

// A RulesOnly Firewall edits the rules of a kept dataplane and leaves
// the rest as the owner set it: attachments, mark, timeouts.
func TestRulesOnlyKeepsWhatTheOwnerSet(t *testing.T) {
	ns := testenv.NewTestNamespace(t, "ro")
	pin := testenv.PinPath(t, "ro")
	t.Cleanup(func() { os.RemoveAll(pin) })
	ctx := context.Background()
	const mark = 0x1230000
	owner := Options{
		PinPath: pin, KeepOnClose: true, Mark: mark,
		Interfaces: []Interface{{Name: "lo"}},
		Timeouts:   Timeouts{UDP: 7 * time.Second},
	}
	rule := Rule{
		Action: TProxy, Protocol: intercept.TCP, Destination: netip.MustParsePrefix("10.9.0.0/24"),
		Ports: intercept.PortRange{Low: 80, High: 80}, TProxyPort: 4000, ServiceID: "owner",
	}
	err := ns.Do(func() error {
		fw, err := New(owner)
		if err != nil {
			return err
		}
		if _, err := fw.Rules().Add(ctx, rule); err != nil {
			fw.Close()
			return err
		}
		return fw.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	links := func() []string {
		// The dataplane pins its TCX links in <pin>/links; on kernels
		// without TCX (before 6.6) it attaches clsact filters instead.
		entries, err := os.ReadDir(filepath.Join(pin, "links"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		for _, dir := range []string{"ingress", "egress"} {
			out, err := ns.Exec(ctx, "tc", "filter", "show", "dev", "lo", dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) > 0 {
				names = append(names, "clsact "+dir)
			}
		}
		return names
	}
	before := links()
	if len(before) == 0 {
		t.Fatal("owner left no attachment: no pinned link, no clsact filter")
	}

	var cfg bpfobj.ZfwConfig
	err = ns.Do(func() error {
		fw, err := New(Options{PinPath: pin, RulesOnly: true, Mark: 0x99})
		if err != nil {
			return err
		}
		defer fw.Close()
		if got := fw.Rules().Find(rule); len(got) != 1 {
			return fmt.Errorf("owner's rule not found: %+v", got)
		}
		second := rule
		second.Destination = netip.MustParsePrefix("10.9.1.0/24")
		if _, err := fw.Rules().Add(ctx, second); err != nil {
			return err
		}
		return fw.tbl.Maps.Config.Lookup(uint32(0), &cfg)
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mark != mark || time.Duration(cfg.UdpNs) != 7*time.Second {
		t.Errorf("config after a RulesOnly change: mark %#x, udp %v; want %#x, 7s", cfg.Mark, time.Duration(cfg.UdpNs), mark)
	}
	if after := links(); len(after) != len(before) {
		t.Errorf("pinned links %v after RulesOnly, were %v", after, before)
	}

	// The owner comes back to both rules, and removes everything.
	err = ns.Do(func() error {
		owner.KeepOnClose = false
		fw, err := New(owner)
		if err != nil {
			return err
		}
		defer fw.Close()
		if u := fw.Usage(); u.Rules != 2 {
			return fmt.Errorf("owner adopted %d rules, want 2", u.Rules)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A dataplane made with other sizes is adopted with its own, by an
// owner and by RulesOnly alike.
func TestAdoptionKeepsTheSizesOfTheDataplane(t *testing.T) {
	testenv.RequirePrivileged(t)
	pin := testenv.PinPath(t, "ro")
	t.Cleanup(func() { os.RemoveAll(pin) })
	fw, err := New(Options{PinPath: pin, KeepOnClose: true, MaxRules: 1000, MaxPrefixes: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{
		{PinPath: pin, RulesOnly: true},
		{PinPath: pin, KeepOnClose: true, MaxRules: 5000},
	} {
		fw, err := New(o)
		if err != nil {
			t.Fatalf("New(%+v): %v", o, err)
		}
		u := fw.Usage()
		fw.Close()
		if u.MaxRules != 1000 || u.MaxPrefixes != 100 {
			t.Errorf("New(%+v): capacities %d rules, %d prefixes; want 1000, 100", o, u.MaxRules, u.MaxPrefixes)
		}
	}
}
