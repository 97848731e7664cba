package bench

import (
	"testing"

	zitiintercept "github.com/zfw-go/zfw/intercept/ziti"
)

func TestZitiServicesAreDialableAndDecodeToDistinctAddresses(t *testing.T) {
	for _, n := range []int{1, 300, 70000} {
		services, err := ZitiServices(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(services) != n {
			t.Fatalf("ZitiServices(%d) made %d", n, len(services))
		}
		ids, addrs := map[string]bool{}, map[string]bool{}
		for _, svc := range services {
			if !zitiintercept.CanDial(svc) {
				t.Fatalf("service %s is not dialable", *svc.ID)
			}
			cfg, ok, err := zitiintercept.DecodeConfig(svc)
			if err != nil || !ok {
				t.Fatalf("service %s: config found %v, %v", *svc.ID, ok, err)
			}
			if len(cfg.Addresses) != 1 {
				t.Fatalf("service %s: %d addresses, want 1", *svc.ID, len(cfg.Addresses))
			}
			a := cfg.Addresses[0].String()
			if ids[*svc.ID] || addrs[a] {
				t.Fatalf("ZitiServices(%d): service %s or address %s twice", n, *svc.ID, a)
			}
			ids[*svc.ID], addrs[a] = true, true
		}
	}
}

func TestPortCounterKeepsAServicesPortAndGivesOthersNewOnes(t *testing.T) {
	var p PortCounter
	spec := func(id string) zitiintercept.ListenerSpec { return zitiintercept.ListenerSpec{ServiceID: id} }
	a, err := p.Open(t.Context(), spec("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Open(t.Context(), spec("b"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Open(t.Context(), spec("a"))
	if err != nil {
		t.Fatal(err)
	}
	if a == b || again != a || a <= 1024 {
		t.Errorf("ports a=%d b=%d a again=%d: want a kept, b different, both above 1024", a, b, again)
	}
	if err := p.Close("a"); err != nil {
		t.Fatal(err)
	}
	if c, _ := p.Open(t.Context(), spec("a")); c == a {
		t.Errorf("a closed and reopened got its old port %d back; want a new one", c)
	}
}
