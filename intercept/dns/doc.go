// Package dns is the name server that gives Ziti host name and wildcard
// intercepts their addresses.
//
// An intercept.v1 address may be a host name ("db.internal") or a wildcard
// domain ("*.example.com") rather than an IP address. A tunneler cannot
// intercept a name, only an address, so it hands each name an address of its
// own out of a private range (100.64.0.0/10 by default), intercepts that
// address, and answers DNS queries for the name with it. The system resolver
// is pointed at this server first; names the server does not own are
// REFUSED, so the resolver goes on to its next server.
//
// Host names get their address when they are added (Server.AddHostname).
// Wildcards cannot be listed in advance: an address is allocated when a query
// for a matching name arrives, and each owner of the wildcard is told through
// its onAllocate callback before the answer leaves, so the intercept is in
// place by the time the client connects (Server.AddWildcard). Owners are
// counted: a name shared by several services has one address, released for
// reuse when the last of them goes away. Server.Lookup maps an address back
// to its name, for the dst_hostname a tunneler passes to the hosting side.
//
// Compared with OpenZiti's Go tunneler (tunnel/dns), which this follows
// (first address 100.64.0.2, TTL 60 s, REFUSED for foreign names, empty
// NOERROR for AAAA, "*.example.com" not matching "example.com"), this
// package also: counts owners of wildcards, not only of host names, so two
// services with the same wildcard both intercept its names; recycles a
// released address only after the fresh ones run out; keeps the case of the
// question in the answer; listens on TCP as well as UDP; and never recycles
// an address some owner may still intercept after a failed allocation.
//
// The range is IPv4 by default. An IPv6 range works too: the server then
// answers AAAA queries with the addresses and A queries with an empty
// NOERROR.
package dns
