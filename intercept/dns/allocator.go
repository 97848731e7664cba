package dns

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrRangeExhausted is returned (wrapped) by Allocator.Allocate when every
// address of the range is in use.
var ErrRangeExhausted = errors.New("address range exhausted")

// Allocator hands out the addresses of one prefix, one at a time.
//
// The first two addresses of the prefix are never handed out: the network
// address, and network+1, which OpenZiti's tunnelers keep for themselves (the
// Go tunneler counts from it, the C tunneler puts its tun interface there).
// For an IPv4 prefix the last (broadcast) address is never handed out either.
// With the default range 100.64.0.0/10 the first address is 100.64.0.2 and the
// last is 100.127.255.254.
//
// Fresh addresses come first, in ascending order. An address given back with
// Release is only handed out again once every fresh address has been used,
// and released addresses are then reused oldest first (FIFO). A name's old
// address therefore stays unused for as long as possible, so that a client
// which still caches an old answer does not reach a different service.
//
// An IPv6 prefix works the same way, minus the broadcast rule: its last
// address is usable.
//
// An Allocator is not safe for concurrent use; Server guards its own.
type Allocator struct {
	prefix netip.Prefix
	next   netip.Addr // the next fresh address; invalid once they are used up
	last   netip.Addr // the last address that may be handed out

	inUse    map[netip.Addr]struct{}
	released []netip.Addr // FIFO of addresses given back
	reserved map[netip.Addr]struct{}
}

// NewAllocator returns an Allocator over prefix. It fails if prefix holds no
// address that may be handed out (an IPv4 prefix longer than /30, an IPv6
// prefix longer than /127).
func NewAllocator(prefix netip.Prefix) (*Allocator, error) {
	if !prefix.IsValid() {
		return nil, errors.New("dns: invalid address range")
	}
	prefix = prefix.Masked()
	first := prefix.Addr().Next().Next()
	last := lastAddr(prefix)
	if prefix.Addr().Is4() {
		last = last.Prev()
	}
	if !first.IsValid() || !last.IsValid() || first.Compare(last) > 0 || !prefix.Contains(first) {
		return nil, fmt.Errorf("dns: address range %s is too small: no address is left after network and network+1 (and, for IPv4, the broadcast address)", prefix)
	}
	return &Allocator{
		prefix:   prefix,
		next:     first,
		last:     last,
		inUse:    make(map[netip.Addr]struct{}),
		reserved: make(map[netip.Addr]struct{}),
	}, nil
}

// lastAddr returns the highest address of prefix (which must be masked).
func lastAddr(prefix netip.Prefix) netip.Addr {
	b := prefix.Addr().AsSlice()
	bits := prefix.Bits()
	for i := range b {
		switch {
		case (i+1)*8 <= bits:
			// fully inside the network part
		case i*8 >= bits:
			b[i] = 0xff
		default:
			b[i] |= 0xff >> (bits - i*8)
		}
	}
	addr, _ := netip.AddrFromSlice(b)
	return addr
}

// Prefix returns the range the Allocator hands addresses out of.
func (a *Allocator) Prefix() netip.Prefix { return a.prefix }

// Allocate returns an address that is not in use and marks it in use. When the
// range is exhausted the error wraps ErrRangeExhausted.
func (a *Allocator) Allocate() (netip.Addr, error) {
	for a.next.IsValid() {
		addr := a.next
		if addr == a.last {
			a.next = netip.Addr{}
		} else {
			a.next = addr.Next()
		}
		if _, skip := a.reserved[addr]; skip {
			continue
		}
		a.inUse[addr] = struct{}{}
		return addr, nil
	}
	if len(a.released) > 0 {
		addr := a.released[0]
		a.released[0] = netip.Addr{}
		a.released = a.released[1:]
		a.inUse[addr] = struct{}{}
		return addr, nil
	}
	return netip.Addr{}, fmt.Errorf("cannot allocate an address from %s: %w", a.prefix, ErrRangeExhausted)
}

// Release gives addr back. It reports whether addr was in use; releasing an
// address that is not (twice, or one never allocated) does nothing.
func (a *Allocator) Release(addr netip.Addr) bool {
	if _, ok := a.inUse[addr]; !ok {
		return false
	}
	delete(a.inUse, addr)
	a.released = append(a.released, addr)
	return true
}

// Reserve keeps addr from ever being handed out, for example because the DNS
// server itself listens on it. It reports whether addr could be reserved: it
// must lie in the range and not be in use.
func (a *Allocator) Reserve(addr netip.Addr) bool {
	if !a.prefix.Contains(addr) {
		return false
	}
	if _, ok := a.inUse[addr]; ok {
		return false
	}
	a.reserved[addr] = struct{}{}
	for i, r := range a.released {
		if r == addr {
			a.released = append(a.released[:i], a.released[i+1:]...)
			break
		}
	}
	return true
}

// InUse returns how many addresses are handed out.
func (a *Allocator) InUse() int { return len(a.inUse) }
