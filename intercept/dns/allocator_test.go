package dns

import (
	"errors"
	"net/netip"
	"testing"
)

// allocateN allocates n addresses and returns them as strings.
func allocateN(t *testing.T, a *Allocator, n int) []string {
	t.Helper()
	var got []string
	for range n {
		addr, err := a.Allocate()
		if err != nil {
			t.Fatalf("Allocate #%d: %v", len(got)+1, err)
		}
		got = append(got, addr.String())
	}
	return got
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAllocatorHandsOutFreshAddressesInOrderThenRunsOut(t *testing.T) {
	tests := []struct {
		name  string
		cidr  string
		first []string // the first addresses, in order
		total int      // how many there are before exhaustion (0: too many to count)
	}{
		{"default range starts at network+2", "100.64.0.0/10", []string{"100.64.0.2", "100.64.0.3", "100.64.0.4"}, 0},
		{"unmasked prefix as OpenZiti writes it", "100.64.0.1/10", []string{"100.64.0.2", "100.64.0.3"}, 0},
		{"/30 has one address", "10.0.0.0/30", []string{"10.0.0.2"}, 1},
		{"/29 skips network, +1 and broadcast", "10.0.0.8/29", []string{"10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14"}, 5},
		{"/24 ends before broadcast", "192.168.7.0/24", []string{"192.168.7.2", "192.168.7.3"}, 253},
		{"IPv6 /126 keeps its last address", "fd00::/126", []string{"fd00::2", "fd00::3"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAllocator(netip.MustParsePrefix(tt.cidr))
			if err != nil {
				t.Fatalf("NewAllocator: %v", err)
			}
			if got := allocateN(t, a, len(tt.first)); !equalStrings(got, tt.first) {
				t.Fatalf("first addresses = %v, want %v", got, tt.first)
			}
			if tt.total == 0 {
				return
			}
			rest := allocateN(t, a, tt.total-len(tt.first))
			prefix := netip.MustParsePrefix(tt.cidr)
			for _, s := range rest {
				addr := netip.MustParseAddr(s)
				if !prefix.Contains(addr) || addr == lastAddr(prefix.Masked()) && prefix.Addr().Is4() {
					t.Errorf("handed out %s, outside %s or its broadcast address", s, tt.cidr)
				}
			}
			if a.InUse() != tt.total {
				t.Errorf("InUse = %d, want %d", a.InUse(), tt.total)
			}
			if addr, err := a.Allocate(); !errors.Is(err, ErrRangeExhausted) {
				t.Fatalf("Allocate after %d addresses = %v, %v; want ErrRangeExhausted", tt.total, addr, err)
			}
		})
	}
}

func TestAllocatorRefusesRangesWithoutUsableAddresses(t *testing.T) {
	for _, cidr := range []string{"10.0.0.0/31", "10.0.0.1/32", "fd00::/127", "fd00::1/128"} {
		t.Run(cidr, func(t *testing.T) {
			if _, err := NewAllocator(netip.MustParsePrefix(cidr)); err == nil {
				t.Fatalf("NewAllocator(%s) succeeded", cidr)
			}
		})
	}
	if _, err := NewAllocator(netip.Prefix{}); err == nil {
		t.Fatal("NewAllocator(zero prefix) succeeded")
	}
}

func TestAllocatorRecyclesReleasedAddressesFIFOAfterFreshOnes(t *testing.T) {
	a, err := NewAllocator(netip.MustParsePrefix("10.0.0.0/29")) // .2 … .6
	if err != nil {
		t.Fatal(err)
	}
	allocateN(t, a, 2) // .2 .3
	for _, s := range []string{"10.0.0.3", "10.0.0.2"} {
		if !a.Release(netip.MustParseAddr(s)) {
			t.Fatalf("Release(%s) = false", s)
		}
	}
	// Fresh addresses first, then the released ones in release order.
	want := []string{"10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.3", "10.0.0.2"}
	if got := allocateN(t, a, len(want)); !equalStrings(got, want) {
		t.Fatalf("allocation order = %v, want %v", got, want)
	}
	if _, err := a.Allocate(); !errors.Is(err, ErrRangeExhausted) {
		t.Fatalf("Allocate on a full range: %v, want ErrRangeExhausted", err)
	}
	if !a.Release(netip.MustParseAddr("10.0.0.5")) {
		t.Fatal("Release(10.0.0.5) = false")
	}
	if got := allocateN(t, a, 1); got[0] != "10.0.0.5" {
		t.Fatalf("after exhaustion and a release got %s, want 10.0.0.5", got[0])
	}
}

func TestAllocatorIgnoresReleaseOfAddressesNotInUse(t *testing.T) {
	a, err := NewAllocator(netip.MustParsePrefix("10.0.0.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := a.Allocate()
	tests := []struct {
		name string
		addr netip.Addr
		want bool
	}{
		{"allocated", addr, true},
		{"released twice", addr, false},
		{"never allocated", netip.MustParseAddr("10.0.0.4"), false},
		{"outside the range", netip.MustParseAddr("192.0.2.1"), false},
	}
	for _, tt := range tests {
		if got := a.Release(tt.addr); got != tt.want {
			t.Errorf("%s: Release(%s) = %v, want %v", tt.name, tt.addr, got, tt.want)
		}
	}
	// A double release must not queue the address twice.
	got := allocateN(t, a, 5)
	want := []string{"10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.2"}
	if !equalStrings(got, want) {
		t.Fatalf("allocation order = %v, want %v", got, want)
	}
	if _, err := a.Allocate(); !errors.Is(err, ErrRangeExhausted) {
		t.Fatalf("Allocate: %v, want ErrRangeExhausted", err)
	}
}

func TestAllocatorNeverHandsOutReservedAddresses(t *testing.T) {
	a, err := NewAllocator(netip.MustParsePrefix("10.0.0.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	if !a.Reserve(netip.MustParseAddr("10.0.0.2")) {
		t.Fatal("Reserve(10.0.0.2) = false")
	}
	if a.Reserve(netip.MustParseAddr("192.0.2.1")) {
		t.Fatal("Reserve outside the range = true")
	}
	got := allocateN(t, a, 4)
	want := []string{"10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}
	if !equalStrings(got, want) {
		t.Fatalf("allocation order = %v, want %v", got, want)
	}
	if a.Reserve(netip.MustParseAddr("10.0.0.4")) {
		t.Fatal("Reserve of an address in use = true")
	}
	if _, err := a.Allocate(); !errors.Is(err, ErrRangeExhausted) {
		t.Fatalf("Allocate: %v, want ErrRangeExhausted", err)
	}
}
