package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The address plan of every Topology. The ranges are private (10.201/16)
// and unique-local (fd00::/8) and exist only inside a topology's own
// namespaces, which have no link to the host: topologies made at the same
// time use the same addresses without colliding, and no packet sent to
// them, or to anything else, can leave a topology.
const (
	clientAddr4       = "10.201.1.2/24"
	routerClientAddr4 = "10.201.1.1/24"
	routerServerAddr4 = "10.201.2.1/24"
	serverAddr4       = "10.201.2.2/24"

	clientAddr6       = "fd00:201:1::2/64"
	routerClientAddr6 = "fd00:201:1::1/64"
	routerServerAddr6 = "fd00:201:2::1/64"
	serverAddr6       = "fd00:201:2::2/64"
)

// readyTimeout bounds NewTopology's wait for usable IPv6 addresses when
// its context has no deadline.
const readyTimeout = 10 * time.Second

// Topology is three namespaces in a line, the shape of the project's tests
// and demo:
//
//	Client [ClientIf] <-veth-> [RouterClientIf] Router [RouterServerIf] <-veth-> [ServerIf] Server
//
// Its address plan, the same in every Topology:
//
//	link            subnet            client / server side   router side
//	client-router   10.201.1.0/24     10.201.1.2             10.201.1.1
//	                fd00:201:1::/64   fd00:201:1::2          fd00:201:1::1
//	router-server   10.201.2.0/24     10.201.2.2             10.201.2.1
//	                fd00:201:2::/64   fd00:201:2::2          fd00:201:2::1
//
// The client's and the server's default routes (IPv4 and IPv6) point at the
// router's address on their link; the router forwards (net.ipv4.ip_forward
// and net.ipv6.conf.all.forwarding are 1 there, and 0 in the client and the
// server) and has no default route, so traffic to any address outside the
// plan is dropped as unreachable at the router. All links and lo are up.
//
// IPv6 addresses carry IFA_F_NODAD and duplicate address detection is off
// (net.ipv6.conf.{all,default}.accept_dad=0, so link-local addresses are
// usable at once too), and router advertisements are ignored
// (accept_ra=0). Other sysctls keep the kernel's values for a new
// namespace: IPv4 ones (rp_filter among them, used as the host has it)
// are inherited from the host's initial namespace, IPv6 ones are the
// kernel defaults (net.core.devconf_inherit_init_net=0). Routing is
// symmetric, so even strict rp_filter passes the topology's traffic.
type Topology struct {
	// ID is the prefix and unique part that every namespace name of the
	// topology starts with: "PREFIX" + "PID-RAND".
	ID string

	// Client, Router and Server are the namespaces ID+"-c", ID+"-r" and
	// ID+"-s". A field is nil only in a topology whose creation failed.
	Client, Router, Server *Namespace

	// Interface names, each inside its own namespace: ClientIf (in Client)
	// is the veth peer of RouterClientIf (in Router), RouterServerIf (in
	// Router) that of ServerIf (in Server). They are "cr-", "rc-", "rs-"
	// and "sr-" followed by the 8 hex digits of ID's random part.
	ClientIf, RouterClientIf, RouterServerIf, ServerIf string

	// IPv4 addresses with their /24 links.
	ClientAddr4, RouterClientAddr4, RouterServerAddr4, ServerAddr4 netip.Prefix

	// IPv6 unique-local addresses with their /64 links.
	ClientAddr6, RouterClientAddr6, RouterServerAddr6, ServerAddr6 netip.Prefix
}

// NewTopology creates a client–router–server topology whose namespace
// names start with prefix followed by the creating process's PID and a
// random part, so that topologies of parallel tests and processes never
// collide and CleanupStale(prefix) can later find those of dead
// processes. Interface names are at most 11 characters.
//
// NewTopology returns once every address is usable. If it fails, or ctx
// ends first, it deletes everything it made before returning the error.
func NewTopology(ctx context.Context, prefix string) (*Topology, error) {
	return newTopology(ctx, prefix, nil)
}

// newTopology is NewTopology with a hook called after each named step,
// whose error fails the creation there (for tests of the cleanup).
func newTopology(ctx context.Context, prefix string, hook func(step string) error) (*Topology, error) {
	if prefix == "" {
		return nil, errors.New("testenv: topology: empty prefix")
	}
	id := uniqueID()
	t := &Topology{ID: prefix + id}
	if err := validName(t.ID + "-c"); err != nil {
		return nil, fmt.Errorf("testenv: topology %q: %w", t.ID, err)
	}
	rnd := id[strings.IndexByte(id, '-')+1:]
	t.ClientIf, t.RouterClientIf = "cr-"+rnd, "rc-"+rnd
	t.RouterServerIf, t.ServerIf = "rs-"+rnd, "sr-"+rnd
	t.ClientAddr4 = netip.MustParsePrefix(clientAddr4)
	t.RouterClientAddr4 = netip.MustParsePrefix(routerClientAddr4)
	t.RouterServerAddr4 = netip.MustParsePrefix(routerServerAddr4)
	t.ServerAddr4 = netip.MustParsePrefix(serverAddr4)
	t.ClientAddr6 = netip.MustParsePrefix(clientAddr6)
	t.RouterClientAddr6 = netip.MustParsePrefix(routerClientAddr6)
	t.RouterServerAddr6 = netip.MustParsePrefix(routerServerAddr6)
	t.ServerAddr6 = netip.MustParsePrefix(serverAddr6)

	steps := []struct {
		name string
		do   func() error
	}{
		{"netns", t.createNamespaces},
		{"sysctl", t.setSysctls},
		{"veth", t.createVeths},
		{"up", t.setLinksUp},
		{"addr", t.addAddrs},
		{"route", t.addRoutes},
		{"ready", func() error { return t.waitReady(ctx) }},
	}
	for _, s := range steps {
		err := ctx.Err()
		if err == nil {
			err = s.do()
		}
		if err == nil && hook != nil {
			err = hook(s.name)
		}
		if err != nil {
			err = fmt.Errorf("testenv: topology %s: %s: %w", t.ID, s.name, err)
			if cerr := t.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
			}
			return nil, err
		}
	}
	return t, nil
}

// Namespaces returns the topology's namespaces that exist: Client, Router,
// Server in that order.
func (t *Topology) Namespaces() []*Namespace {
	var all []*Namespace
	for _, n := range []*Namespace{t.Client, t.Router, t.Server} {
		if n != nil {
			all = append(all, n)
		}
	}
	return all
}

func (t *Topology) createNamespaces() error {
	for _, p := range []struct {
		ns   **Namespace
		role string
	}{{&t.Client, "c"}, {&t.Router, "r"}, {&t.Server, "s"}} {
		name := t.ID + "-" + p.role
		n, err := newNamespace(name)
		if err != nil {
			return fmt.Errorf("create netns %s: %w", name, err)
		}
		*p.ns = n
	}
	return nil
}

// writeSysctl sets a sysctl of the calling thread's network namespace
// (/proc/sys/net is per namespace, resolved at open); call it inside Do.
func writeSysctl(key, value string) error {
	p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// setSysctls runs before the veths exist, so that they take the "default"
// values.
func (t *Topology) setSysctls() error {
	common := [][2]string{
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
		{"net.ipv6.conf.all.accept_ra", "0"},
		{"net.ipv6.conf.default.accept_ra", "0"},
	}
	forwarding := func(v string) [][2]string {
		return [][2]string{
			{"net.ipv4.ip_forward", v},
			{"net.ipv6.conf.all.forwarding", v},
			{"net.ipv6.conf.default.forwarding", v},
		}
	}
	for _, p := range []struct {
		n   *Namespace
		fwd string
	}{{t.Client, "0"}, {t.Router, "1"}, {t.Server, "0"}} {
		kvs := append(append([][2]string(nil), common...), forwarding(p.fwd)...)
		err := p.n.do(func() error {
			for _, kv := range kvs {
				if err := writeSysctl(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (t *Topology) createVeths() error {
	pairs := []struct {
		from, to           *Namespace
		fromName, peerName string
	}{
		{t.Client, t.Router, t.ClientIf, t.RouterClientIf},
		{t.Router, t.Server, t.RouterServerIf, t.ServerIf},
	}
	for _, p := range pairs {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: p.fromName},
			PeerName:      p.peerName,
			PeerNamespace: netlink.NsFd(p.to.Handle()),
		}
		// Made inside from's namespace with the peer placed straight into
		// to's: the pair never appears in the host's namespace.
		if err := p.from.Netlink().LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s (netns %s) <-> %s (netns %s): %w",
				p.fromName, p.from.Name(), p.peerName, p.to.Name(), err)
		}
	}
	return nil
}

// link finds an interface of n by name.
func link(n *Namespace, name string) (netlink.Link, error) {
	l, err := n.Netlink().LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find %s in netns %s: %w", name, n.Name(), err)
	}
	return l, nil
}

// end is one interface of a topology with its namespace and addresses.
type end struct {
	n            *Namespace
	ifname       string
	addr4, addr6 netip.Prefix
}

// ends lists the topology's interfaces.
func (t *Topology) ends() []end {
	return []end{
		{t.Client, t.ClientIf, t.ClientAddr4, t.ClientAddr6},
		{t.Router, t.RouterClientIf, t.RouterClientAddr4, t.RouterClientAddr6},
		{t.Router, t.RouterServerIf, t.RouterServerAddr4, t.RouterServerAddr6},
		{t.Server, t.ServerIf, t.ServerAddr4, t.ServerAddr6},
	}
}

func (t *Topology) setLinksUp() error {
	for _, e := range t.ends() {
		l, err := link(e.n, e.ifname)
		if err != nil {
			return err
		}
		if err := e.n.Netlink().LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up in netns %s: %w", e.ifname, e.n.Name(), err)
		}
	}
	return nil
}

// ipNet converts a netip.Prefix (an address with its subnet's length) to
// the *net.IPNet netlink wants.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func (t *Topology) addAddrs() error {
	for _, e := range t.ends() {
		l, err := link(e.n, e.ifname)
		if err != nil {
			return err
		}
		for _, a := range []*netlink.Addr{
			{IPNet: ipNet(e.addr4)},
			{IPNet: ipNet(e.addr6), Flags: unix.IFA_F_NODAD},
		} {
			if err := e.n.Netlink().AddrAdd(l, a); err != nil {
				return fmt.Errorf("add %s to %s in netns %s: %w", a.IPNet, e.ifname, e.n.Name(), err)
			}
		}
	}
	return nil
}

func (t *Topology) addRoutes() error {
	for _, r := range []struct {
		n          *Namespace
		ifname     string
		via4, via6 netip.Prefix
	}{
		{t.Client, t.ClientIf, t.RouterClientAddr4, t.RouterClientAddr6},
		{t.Server, t.ServerIf, t.RouterServerAddr4, t.RouterServerAddr6},
	} {
		l, err := link(r.n, r.ifname)
		if err != nil {
			return err
		}
		for _, via := range []netip.Prefix{r.via4, r.via6} {
			bits := via.Addr().BitLen()
			dst := &net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)}
			route := &netlink.Route{
				LinkIndex: l.Attrs().Index,
				Dst:       dst,
				Gw:        net.IP(via.Addr().AsSlice()),
			}
			if err := r.n.Netlink().RouteAdd(route); err != nil {
				return fmt.Errorf("add default route via %s dev %s in netns %s: %w",
					via.Addr(), r.ifname, r.n.Name(), err)
			}
		}
	}
	return nil
}

func (t *Topology) waitReady(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	for _, n := range t.Namespaces() {
		if err := n.waitIPv6Ready(ctx); err != nil {
			return err
		}
	}
	return nil
}

// WaitIPv6Ready waits until no IPv6 address in any of the topology's
// namespaces is tentative; see Namespace.WaitIPv6Ready. NewTopology has
// already waited for the addresses it adds.
func (t *Topology) WaitIPv6Ready(ctx context.Context) error {
	for _, n := range t.Namespaces() {
		if err := n.WaitIPv6Ready(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close deletes the topology's namespaces, and with them its veths. It is
// idempotent, and works on a partly created topology; after a failure it
// may be called again.
func (t *Topology) Close() error {
	var errs []error
	for _, n := range []*Namespace{t.Server, t.Router, t.Client} {
		if n == nil {
			continue
		}
		if err := n.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
