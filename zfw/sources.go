package zfw

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
)

// LocalSources are address prefixes the host takes as its own, with a
// local route on lo for each (in table local, as `ip route add local
// PREFIX dev lo`), so that a tunneler hosting a service can open its
// connections from the clients' addresses (a socket bound to one with
// IP_TRANSPARENT) and receive the replies, which the host would
// otherwise forward. They are what OpenZiti's AllowedSourceAddresses of
// a hosted service need, and what the C zfw's -B and -J add and remove.
//
// Each prefix is counted: added twice, it stays until removed twice.
// Close removes them all, but with KeepOnClose; the next owner of the
// pins takes each one it finds as added once.
type LocalSources struct{ f *Firewall }

// LocalSources returns the API of the local sources. It needs the
// kernel dataplane.
func (f *Firewall) LocalSources() *LocalSources { return &LocalSources{f} }

// Add makes the addresses of p local, or counts one more use of p.
func (s *LocalSources) Add(ctx context.Context, p netip.Prefix) error {
	return s.change(ctx, p, func(f *Firewall, p netip.Prefix) error {
		if f.sources[p] == 0 {
			if err := f.dp.AddLocalSource(p); err != nil {
				return err
			}
		}
		f.sources[p]++
		return nil
	})
}

// Remove counts one use of p fewer, and when none is left makes its
// addresses what they were. A prefix not added is an error wrapping
// ErrNotFound.
func (s *LocalSources) Remove(ctx context.Context, p netip.Prefix) error {
	return s.change(ctx, p, func(f *Firewall, p netip.Prefix) error {
		switch f.sources[p] {
		case 0:
			return fmt.Errorf("local source %s: %w", p, ErrNotFound)
		case 1:
			if err := f.dp.RemoveLocalSource(p); err != nil {
				return err
			}
			delete(f.sources, p)
		default:
			f.sources[p]--
		}
		return nil
	})
}

// change validates p and, with f.mu held, applies do to it masked.
func (s *LocalSources) change(ctx context.Context, p netip.Prefix, do func(*Firewall, netip.Prefix) error) error {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := s.check(ctx, p)
	if err != nil {
		return err
	}
	return do(f, p)
}

// List returns the local sources in order, each as often as it was
// added.
func (s *LocalSources) List() ([]netip.Prefix, error) {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.kernel(context.Background(), "local sources"); err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for p, n := range f.sources {
		for range n {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return out, nil
}

// check validates p for Add and Remove and returns it masked. f.mu must
// be held.
func (s *LocalSources) check(ctx context.Context, p netip.Prefix) (netip.Prefix, error) {
	if _, err := s.f.kernel(ctx, "local sources"); err != nil {
		return p, err
	}
	switch {
	case !p.IsValid() || p.Addr().Zone() != "":
		return p, fmt.Errorf("local source %s: not an IPv4 or IPv6 prefix", p)
	case p.Bits() == 0:
		return p, fmt.Errorf("local source %s: would make every address local", p)
	case p.Addr().Is4In6():
		return p, fmt.Errorf("local source %s: an IPv4-mapped prefix; give it as IPv4", p)
	}
	return p.Masked(), nil
}
