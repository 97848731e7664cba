package ziti

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openziti/edge-api/rest_model"

	"github.com/zfw-go/zfw/intercept"
)

// The hosting side's config types.
const (
	// HostV1 says where a hosted service's connections go.
	HostV1 = "host.v1"
	// HostV2 is a list of host.v1-like terminators, each hosted on its
	// own.
	HostV2 = "host.v2"
)

// CanBind reports whether the identity may host (bind) the service.
func CanBind(svc *rest_model.ServiceDetail) bool {
	return slices.Contains(svc.Permissions, rest_model.DialBindBind)
}

// Host is where a hosted service's connections go: a host.v1 config, or
// one terminator of a host.v2. For each of protocol, address and port,
// the fixed value is used, or with Forward* the dialing side's (its
// AppData), if the Allowed* list takes it.
type Host struct {
	Protocol         intercept.Protocol
	ForwardProtocol  bool
	AllowedProtocols []intercept.Protocol

	// Address is an IP address or a hostname.
	Address        string
	ForwardAddress bool
	// AllowedAddresses are IP addresses, CIDRs, hostnames and
	// "*.domain" wildcards.
	AllowedAddresses []Address

	Port              uint16
	ForwardPort       bool
	AllowedPortRanges []intercept.PortRange

	// AllowedSourceAddresses are the prefixes the hosting side may open
	// connections from, as the dialing side asks (AppData source_addr):
	// the clients' own addresses, for transparency. Without any, the
	// hosting side opens connections from its own address.
	AllowedSourceAddresses []netip.Prefix

	// Listen says how the service is bound (listenOptions).
	Listen HostListen
}

// HostListen is a host config's listenOptions.
type HostListen struct {
	// BindUsingEdgeIdentity names the terminators after the hosting
	// identity; Identity names them (a template is not expanded here).
	BindUsingEdgeIdentity bool
	Identity              string
	Cost                  uint16
	// Precedence is "default", "required" or "failed"; empty is default.
	Precedence string
	// ConnectTimeout bounds the connection to the target (default 5 s).
	ConnectTimeout time.Duration
	// MaxConnections is the number of terminators (default 3).
	MaxConnections int
}

// DefaultMaxConnections is the terminators a service is bound with when
// its listenOptions set none, as in sdk-golang.
const DefaultMaxConnections = 3

// DecodeHosts decodes the service's hosting configs: the terminators of
// host.v2, or else host.v1. It returns no hosts and no error when the
// service has neither, and a *ConfigError when a config is unusable.
func DecodeHosts(svc *rest_model.ServiceDetail) ([]Host, error) {
	d := decoder{serviceID: deref(svc.ID), serviceName: deref(svc.Name)}
	if raw, ok := svc.Config[HostV2]; ok && raw != nil {
		d.configType = HostV2
		items, err := d.list(raw, "terminators")
		if err != nil {
			return nil, err
		}
		hosts := make([]Host, 0, len(items))
		for k, v := range items {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, d.fail(fmt.Sprintf("terminators[%d]", k), "%s, want an object", typeName(v))
			}
			h, err := d.host(m, fmt.Sprintf("terminators[%d].", k))
			if err != nil {
				return nil, err
			}
			hosts = append(hosts, h)
		}
		return hosts, nil
	}
	if raw, ok := svc.Config[HostV1]; ok && raw != nil {
		d.configType = HostV1
		h, err := d.host(raw, "")
		if err != nil {
			return nil, err
		}
		return []Host{h}, nil
	}
	return nil, nil
}

// host decodes one host.v1 config (or host.v2 terminator); at is the
// path of its fields.
func (d decoder) host(raw map[string]any, at string) (Host, error) {
	h := Host{Listen: HostListen{ConnectTimeout: DefaultDialTimeout, MaxConnections: DefaultMaxConnections}}
	var err error
	flag := func(name string) (bool, error) {
		v, ok := lookup(raw, name)
		if !ok {
			return false, nil
		}
		b, ok := v.(bool)
		if !ok {
			return false, d.fail(at+name, "%s, want true or false", typeName(v))
		}
		return b, nil
	}
	str := func(name string) (string, bool, error) {
		v, ok := lookup(raw, name)
		if !ok {
			return "", false, nil
		}
		s, ok := v.(string)
		if !ok {
			return "", false, d.fail(at+name, "%s, want a string", typeName(v))
		}
		return s, true, nil
	}

	// Protocol.
	if h.ForwardProtocol, err = flag("forwardProtocol"); err != nil {
		return Host{}, err
	}
	if h.ForwardProtocol {
		sub := decoder{d.serviceID, d.serviceName, d.configType}
		ps, err := sub.protocols(map[string]any{"protocols": raw[keyOf(raw, "allowedProtocols")]})
		if err != nil {
			return Host{}, d.fail(at+"allowedProtocols", "%s", reason(err))
		}
		h.AllowedProtocols = ps
	} else {
		s, ok, err := str("protocol")
		if err != nil {
			return Host{}, err
		}
		p := intercept.Protocol(strings.ToLower(s))
		if !ok || (p != intercept.TCP && p != intercept.UDP) {
			return Host{}, d.fail(at+"protocol", "%q, want tcp or udp (or forwardProtocol)", s)
		}
		h.Protocol = p
	}

	// Address.
	if h.ForwardAddress, err = flag("forwardAddress"); err != nil {
		return Host{}, err
	}
	if h.ForwardAddress {
		as, err := d.addresses(map[string]any{"addresses": raw[keyOf(raw, "allowedAddresses")]})
		if err != nil {
			return Host{}, d.fail(at+"allowedAddresses", "%s", reason(err))
		}
		h.AllowedAddresses = as
	} else {
		s, ok, err := str("address")
		if err != nil {
			return Host{}, err
		}
		a, perr := parseAddress(s)
		if !ok || perr != nil || a.Kind == Wildcard || a.Kind == Prefix && !a.Prefix.IsSingleIP() {
			return Host{}, d.fail(at+"address", "%q, want an IP address or hostname (or forwardAddress)", s)
		}
		h.Address = s
	}

	// Port.
	if h.ForwardPort, err = flag("forwardPort"); err != nil {
		return Host{}, err
	}
	if h.ForwardPort {
		rs, err := d.portRanges(map[string]any{"portRanges": raw[keyOf(raw, "allowedPortRanges")]})
		if err != nil {
			return Host{}, d.fail(at+"allowedPortRanges", "%s", reason(err))
		}
		h.AllowedPortRanges = rs
	} else {
		v, ok := lookup(raw, "port")
		if !ok {
			return Host{}, d.fail(at+"port", "missing (or forwardPort)")
		}
		if h.Port, err = d.port(at+"port", v); err != nil {
			return Host{}, err
		}
	}

	if h.AllowedSourceAddresses, err = d.sourcePrefixes(raw); err != nil {
		return Host{}, err
	}

	if v, ok := lookup(raw, "listenOptions"); ok {
		opts, ok := v.(map[string]any)
		if !ok {
			return Host{}, d.fail(at+"listenOptions", "%s, want an object", typeName(v))
		}
		if h.Listen, err = d.listenOptions(opts, at+"listenOptions."); err != nil {
			return Host{}, err
		}
	}
	return h, nil
}

func (d decoder) listenOptions(raw map[string]any, at string) (HostListen, error) {
	l := HostListen{ConnectTimeout: DefaultDialTimeout, MaxConnections: DefaultMaxConnections}
	if v, ok := lookup(raw, "bindUsingEdgeIdentity"); ok {
		b, ok := v.(bool)
		if !ok {
			return l, d.fail(at+"bindUsingEdgeIdentity", "%s, want true or false", typeName(v))
		}
		l.BindUsingEdgeIdentity = b
	}
	if v, ok := lookup(raw, "identity"); ok {
		s, ok := v.(string)
		if !ok {
			return l, d.fail(at+"identity", "%s, want a string", typeName(v))
		}
		l.Identity = s
	}
	if v, ok := lookup(raw, "precedence"); ok {
		s, _ := v.(string)
		switch p := strings.ToLower(s); p {
		case "default", "required", "failed":
			l.Precedence = p
		default:
			return l, d.fail(at+"precedence", "%v, want default, required or failed", v)
		}
	}
	for _, n := range []struct {
		name string
		max  int64
		set  func(int64)
	}{
		{"cost", math.MaxUint16, func(n int64) { l.Cost = uint16(n) }},
		{"connectTimeoutSeconds", math.MaxInt32, func(n int64) { l.ConnectTimeout = time.Duration(n) * time.Second }},
		{"maxConnections", math.MaxInt32, func(n int64) { l.MaxConnections = int(n) }},
	} {
		v, ok := lookup(raw, n.name)
		if !ok {
			continue
		}
		x, err := d.integer(at+n.name, v)
		if err != nil {
			return l, err
		}
		if x < 0 || x > n.max {
			return l, d.fail(at+n.name, "%d is out of range 0-%d", x, n.max)
		}
		n.set(x)
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	return l, nil
}

// keyOf is the key of m that lookup(m, name) finds, or name.
func keyOf(m map[string]any, name string) string {
	if _, ok := m[name]; ok {
		return name
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}

// reason is the reason of a *ConfigError, or the error's text.
func reason(err error) string {
	var ce *ConfigError
	if errors.As(err, &ce) {
		if ce.Field != "" && strings.Contains(ce.Field, "[") {
			return ce.Field[strings.Index(ce.Field, "["):] + ": " + ce.Reason
		}
		return ce.Reason
	}
	return err.Error()
}

// HostTarget is where one hosted connection goes.
type HostTarget struct {
	Protocol intercept.Protocol
	// Address is host:port, the host an IP address or a name.
	Address string
	// Source is the address to open the connection from (the client's,
	// for transparency); zero to use the host's own.
	Source netip.AddrPort
}

// Target works out where a connection the dialing side opened with
// appData (its AppData JSON: dst_protocol, dst_ip or dst_hostname,
// dst_port, source_addr) goes. A forwarded value the config does not
// allow, or a source_addr outside AllowedSourceAddresses, is an error:
// the connection is refused. A source_addr is ignored when the config
// allows none.
func (h Host) Target(appData []byte) (HostTarget, error) {
	var ad map[string]string
	if len(appData) > 0 {
		if err := json.Unmarshal(appData, &ad); err != nil {
			return HostTarget{}, fmt.Errorf("appdata: %w", err)
		}
	}
	t := HostTarget{Protocol: h.Protocol}
	if h.ForwardProtocol {
		p := intercept.Protocol(strings.ToLower(ad[AppDataProtocol]))
		if !slices.Contains(h.AllowedProtocols, p) {
			return HostTarget{}, fmt.Errorf("protocol %q from the dialing side is not allowed (%v)", ad[AppDataProtocol], h.AllowedProtocols)
		}
		t.Protocol = p
	}
	host := h.Address
	if h.ForwardAddress {
		var err error
		if host, err = h.forwardedAddress(ad); err != nil {
			return HostTarget{}, err
		}
	}
	port := h.Port
	if h.ForwardPort {
		n, err := strconv.ParseUint(ad[AppDataPort], 10, 16)
		if err != nil || n == 0 {
			return HostTarget{}, fmt.Errorf("port %q from the dialing side: not a port", ad[AppDataPort])
		}
		if !slices.ContainsFunc(h.AllowedPortRanges, func(r intercept.PortRange) bool { return r.Low <= uint16(n) && uint16(n) <= r.High }) {
			return HostTarget{}, fmt.Errorf("port %d from the dialing side is not allowed", n)
		}
		port = uint16(n)
	}
	t.Address = net.JoinHostPort(host, strconv.Itoa(int(port)))
	if src := ad[AppDataSourceAddr]; src != "" && len(h.AllowedSourceAddresses) > 0 {
		s, err := parseSource(src)
		if err != nil {
			return HostTarget{}, fmt.Errorf("source_addr %q: %w", src, err)
		}
		if !slices.ContainsFunc(h.AllowedSourceAddresses, func(p netip.Prefix) bool { return p.Contains(s.Addr()) }) {
			return HostTarget{}, fmt.Errorf("source_addr %s is not in the allowed source addresses", s.Addr())
		}
		t.Source = s
	}
	return t, nil
}

// forwardedAddress is the dialing side's destination, the IP address
// (dst_ip) or else the name (dst_hostname), if AllowedAddresses takes
// it.
func (h Host) forwardedAddress(ad map[string]string) (string, error) {
	if s := ad[AppDataIP]; s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return "", fmt.Errorf("address %q from the dialing side: not an IP address", s)
		}
		ip = ip.Unmap()
		for _, a := range h.AllowedAddresses {
			if a.Kind == Prefix && a.Prefix.Contains(ip) {
				return ip.String(), nil
			}
		}
		if name := ad[AppDataHostname]; name == "" || !h.allowsName(name) {
			return "", fmt.Errorf("address %s from the dialing side is not allowed", ip)
		}
	}
	name := strings.ToLower(strings.TrimSuffix(ad[AppDataHostname], "."))
	if name == "" {
		return "", errors.New("the dialing side sent no destination address")
	}
	if !h.allowsName(name) {
		return "", fmt.Errorf("hostname %q from the dialing side is not allowed", name)
	}
	return name, nil
}

// allowsName reports whether AllowedAddresses take the hostname: equal,
// or under a "*.domain" wildcard.
func (h Host) allowsName(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, a := range h.AllowedAddresses {
		switch a.Kind {
		case Hostname:
			if a.Name == name {
				return true
			}
		case Wildcard:
			if strings.HasSuffix(name, a.Name[1:]) {
				return true
			}
		}
	}
	return false
}

// parseSource reads a source_addr: "ip:port", "[ip6]:port" or an IP
// address alone (port 0).
func parseSource(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.AddrPort{}, errors.New("not an IP address, or address and port")
	}
	return netip.AddrPortFrom(a.Unmap(), 0), nil
}
