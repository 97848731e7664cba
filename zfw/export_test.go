package zfw

import "net/netip"

// Addresses gives the tests of package zfw_test the addresses the
// dataplane holds for an attached interface.
func (f *Firewall) Addresses(name string) ([]netip.Addr, error) { return f.addresses(name) }
