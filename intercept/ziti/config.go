package ziti

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/openziti/edge-api/rest_model"

	"github.com/zfw-go/zfw/intercept"
)

// The config types a tunneler decodes. Ask the controller for them through
// ziti.Config.ConfigTypes: it returns only the types it is asked for.
const (
	// InterceptV1 is the current client-side config type.
	InterceptV1 = "intercept.v1"
	// TunnelerClientV1 is the legacy client-side config type: one
	// hostname and one port, intercepted for TCP and UDP.
	TunnelerClientV1 = "ziti-tunneler-client.v1"
)

// DefaultDialTimeout is the connect timeout of a service whose config sets
// none, as in OpenZiti's own tunnelers.
const DefaultDialTimeout = 5 * time.Second

// AddressKind says what an intercepted address is.
type AddressKind int

// The kinds of intercepted addresses.
const (
	// Prefix is an IP address (a /32 or /128) or a CIDR.
	Prefix AddressKind = iota + 1
	// Hostname is a DNS name; the Resolver allocates its address.
	Hostname
	// Wildcard is "*.domain": every name under the domain, allocated one
	// by one by the Resolver as clients look them up.
	Wildcard
)

// String returns "prefix", "hostname" or "wildcard".
func (k AddressKind) String() string {
	switch k {
	case Prefix:
		return "prefix"
	case Hostname:
		return "hostname"
	case Wildcard:
		return "wildcard"
	}
	return fmt.Sprintf("AddressKind(%d)", int(k))
}

// Address is one intercepted address of a config.
type Address struct {
	Kind AddressKind
	// Prefix is set for Kind Prefix, masked to its length; an IP address is
	// a /32 or /128.
	Prefix netip.Prefix
	// Name is set for Hostname ("db.corp.example") and Wildcard
	// ("*.corp.example"), in lower case, without a trailing dot.
	Name string
}

// String returns the address as a config would write it.
func (a Address) String() string {
	if a.Kind == Prefix {
		return a.Prefix.String()
	}
	return a.Name
}

// Config is a decoded client-side config: what the tunneler intercepts for
// a service and how it dials it.
type Config struct {
	// Type is the config type it was decoded from, InterceptV1 or
	// TunnelerClientV1.
	Type string
	// Protocols, Addresses and PortRanges are never empty. They keep the
	// config's order.
	Protocols  []intercept.Protocol
	Addresses  []Address
	PortRanges []intercept.PortRange
	// SourcePrefixes are the allowedSourceAddresses; empty means any
	// client.
	SourcePrefixes []netip.Prefix
	// SourceIP is the sourceIp template, empty when unset.
	SourceIP string
	// DialTimeout is dialOptions.connectTimeoutSeconds, DefaultDialTimeout
	// when unset. Zero lets the SDK choose.
	DialTimeout time.Duration
	// DialIdentity is the dialOptions.identity template, empty when unset.
	DialIdentity string
}

// ConfigError is a client-side config that cannot be used. Its message
// names the service, the config type, the field and the reason:
//
//	service "web" (id 3Tq): intercept.v1: portRanges[1]: low 90 > high 80
type ConfigError struct {
	ServiceID   string
	ServiceName string
	// ConfigType is InterceptV1 or TunnelerClientV1.
	ConfigType string
	// Field is the path of the field in the config, like
	// "portRanges[1].low"; empty when the whole config is at fault.
	Field string
	// Reason says what is wrong.
	Reason string
}

// Error returns the message described on ConfigError.
func (e *ConfigError) Error() string {
	where := e.ConfigType
	if e.Field != "" {
		where += ": " + e.Field
	}
	return fmt.Sprintf("service %q (id %s): %s: %s", e.ServiceName, e.ServiceID, where, e.Reason)
}

// CanDial reports whether the identity may dial the service, the condition
// for intercepting it.
func CanDial(svc *rest_model.ServiceDetail) bool {
	return slices.Contains(svc.Permissions, rest_model.DialBindDial)
}

// DecodeConfig decodes the service's client-side config: intercept.v1, or
// when it has none the legacy ziti-tunneler-client.v1. It returns false
// when the service has neither, and a *ConfigError when the config is
// unusable.
//
// Field names match case-insensitively, an exact match first, as the
// mapstructure decoding of OpenZiti's tunnelers does. Fields the decoder
// does not know are ignored; a null field counts as absent.
func DecodeConfig(svc *rest_model.ServiceDetail) (Config, bool, error) {
	d := decoder{serviceID: deref(svc.ID), serviceName: deref(svc.Name)}
	if raw, ok := svc.Config[InterceptV1]; ok && raw != nil {
		d.configType = InterceptV1
		cfg, err := d.interceptV1(raw)
		return cfg, true, err
	}
	if raw, ok := svc.Config[TunnelerClientV1]; ok && raw != nil {
		d.configType = TunnelerClientV1
		cfg, err := d.tunnelerClientV1(raw)
		return cfg, true, err
	}
	return Config{}, false, nil
}

// decoder decodes one config and builds errors that name it.
type decoder struct {
	serviceID, serviceName, configType string
}

func (d decoder) fail(field, format string, args ...any) error {
	return &ConfigError{
		ServiceID:   d.serviceID,
		ServiceName: d.serviceName,
		ConfigType:  d.configType,
		Field:       field,
		Reason:      fmt.Sprintf(format, args...),
	}
}

func (d decoder) interceptV1(raw map[string]any) (Config, error) {
	cfg := Config{Type: InterceptV1, DialTimeout: DefaultDialTimeout}
	var err error
	if cfg.Protocols, err = d.protocols(raw); err != nil {
		return Config{}, err
	}
	if cfg.Addresses, err = d.addresses(raw); err != nil {
		return Config{}, err
	}
	if cfg.PortRanges, err = d.portRanges(raw); err != nil {
		return Config{}, err
	}
	if cfg.SourcePrefixes, err = d.sourcePrefixes(raw); err != nil {
		return Config{}, err
	}
	if v, ok := lookup(raw, "sourceIp"); ok {
		if cfg.SourceIP, err = d.template("sourceIp", v); err != nil {
			return Config{}, err
		}
	}
	if v, ok := lookup(raw, "dialOptions"); ok {
		opts, ok := v.(map[string]any)
		if !ok {
			return Config{}, d.fail("dialOptions", "%s, want an object", typeName(v))
		}
		if v, ok := lookup(opts, "connectTimeoutSeconds"); ok {
			n, err := d.integer("dialOptions.connectTimeoutSeconds", v)
			if err != nil {
				return Config{}, err
			}
			if n < 0 || n > math.MaxInt32 {
				return Config{}, d.fail("dialOptions.connectTimeoutSeconds", "%d is out of range 0-%d", n, math.MaxInt32)
			}
			cfg.DialTimeout = time.Duration(n) * time.Second
		}
		if v, ok := lookup(opts, "identity"); ok {
			if cfg.DialIdentity, err = d.template("dialOptions.identity", v); err != nil {
				return Config{}, err
			}
		}
	}
	return cfg, nil
}

func (d decoder) tunnelerClientV1(raw map[string]any) (Config, error) {
	v, ok := lookup(raw, "hostname")
	if !ok {
		return Config{}, d.fail("hostname", "missing")
	}
	host, ok := v.(string)
	if !ok {
		return Config{}, d.fail("hostname", "%s, want a string", typeName(v))
	}
	addr, err := parseAddress(host)
	if err != nil {
		return Config{}, d.fail("hostname", "%v", err)
	}
	v, ok = lookup(raw, "port")
	if !ok {
		return Config{}, d.fail("port", "missing")
	}
	port, err := d.port("port", v)
	if err != nil {
		return Config{}, err
	}
	return Config{
		Type:        TunnelerClientV1,
		Protocols:   []intercept.Protocol{intercept.TCP, intercept.UDP},
		Addresses:   []Address{addr},
		PortRanges:  []intercept.PortRange{{Low: port, High: port}},
		DialTimeout: DefaultDialTimeout,
	}, nil
}

func (d decoder) protocols(raw map[string]any) ([]intercept.Protocol, error) {
	items, err := d.list(raw, "protocols")
	if err != nil {
		return nil, err
	}
	out := make([]intercept.Protocol, 0, len(items))
	for k, v := range items {
		field := fmt.Sprintf("protocols[%d]", k)
		s, ok := v.(string)
		if !ok {
			return nil, d.fail(field, "%s, want a string", typeName(v))
		}
		p := intercept.Protocol(strings.ToLower(s))
		if p != intercept.TCP && p != intercept.UDP {
			return nil, d.fail(field, "unknown protocol %q, want tcp or udp", s)
		}
		out = append(out, p)
	}
	return out, nil
}

func (d decoder) addresses(raw map[string]any) ([]Address, error) {
	items, err := d.list(raw, "addresses")
	if err != nil {
		return nil, err
	}
	out := make([]Address, 0, len(items))
	for k, v := range items {
		field := fmt.Sprintf("addresses[%d]", k)
		s, ok := v.(string)
		if !ok {
			return nil, d.fail(field, "%s, want a string", typeName(v))
		}
		addr, err := parseAddress(s)
		if err != nil {
			return nil, d.fail(field, "%v", err)
		}
		out = append(out, addr)
	}
	return out, nil
}

func (d decoder) portRanges(raw map[string]any) ([]intercept.PortRange, error) {
	items, err := d.list(raw, "portRanges")
	if err != nil {
		return nil, err
	}
	out := make([]intercept.PortRange, 0, len(items))
	for k, v := range items {
		field := fmt.Sprintf("portRanges[%d]", k)
		m, ok := v.(map[string]any)
		if !ok {
			return nil, d.fail(field, "%s, want an object with low and high", typeName(v))
		}
		var r intercept.PortRange
		for _, end := range []struct {
			name string
			dst  *uint16
		}{{"low", &r.Low}, {"high", &r.High}} {
			v, ok := lookup(m, end.name)
			if !ok {
				return nil, d.fail(field+"."+end.name, "missing")
			}
			if *end.dst, err = d.port(field+"."+end.name, v); err != nil {
				return nil, err
			}
		}
		if r.Low > r.High {
			return nil, d.fail(field, "low %d > high %d", r.Low, r.High)
		}
		out = append(out, r)
	}
	return out, nil
}

func (d decoder) sourcePrefixes(raw map[string]any) ([]netip.Prefix, error) {
	if _, ok := lookup(raw, "allowedSourceAddresses"); !ok {
		return nil, nil
	}
	items, err := d.list(raw, "allowedSourceAddresses")
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(items))
	for k, v := range items {
		field := fmt.Sprintf("allowedSourceAddresses[%d]", k)
		s, ok := v.(string)
		if !ok {
			return nil, d.fail(field, "%s, want a string", typeName(v))
		}
		addr, err := parseAddress(s)
		if err != nil || addr.Kind != Prefix {
			return nil, d.fail(field, "%q is not an IP address or CIDR", s)
		}
		out = append(out, addr.Prefix)
	}
	return out, nil
}

// list returns the non-empty list in field name of raw.
func (d decoder) list(raw map[string]any, name string) ([]any, error) {
	v, ok := lookup(raw, name)
	if !ok {
		return nil, d.fail(name, "missing")
	}
	items, ok := v.([]any)
	if !ok {
		return nil, d.fail(name, "%s, want a list", typeName(v))
	}
	if len(items) == 0 {
		return nil, d.fail(name, "empty list, want at least one item")
	}
	return items, nil
}

// port decodes a port number, 1 to 65535.
func (d decoder) port(field string, v any) (uint16, error) {
	n, err := d.integer(field, v)
	if err != nil {
		return 0, err
	}
	if n < 1 || n > math.MaxUint16 {
		return 0, d.fail(field, "port %d is out of range 1-65535", n)
	}
	return uint16(n), nil
}

// integer decodes a whole number. JSON numbers arrive as float64 (or
// json.Number); a fractional value is an error.
func (d decoder) integer(field string, v any) (int64, error) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || n < math.MinInt64 || n > math.MaxInt64 {
			return 0, d.fail(field, "%v is not a whole number", n)
		}
		return int64(n), nil
	case float32:
		return d.integer(field, float64(n))
	case int:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case int64:
		return n, nil
	case uint16:
		return int64(n), nil
	case uint32:
		return int64(n), nil
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return 0, d.fail(field, "%s is not a whole number", n)
		}
		return i, nil
	}
	return 0, d.fail(field, "%s, want a number", typeName(v))
}

// template decodes a template string and checks its syntax.
func (d decoder) template(field string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", d.fail(field, "%s, want a string", typeName(v))
	}
	if err := checkTemplate(s); err != nil {
		return "", d.fail(field, "%v", err)
	}
	return s, nil
}

// lookup finds field name in m: the exact key first, else any key equal
// to it ignoring case. A null value counts as absent.
func lookup(m map[string]any, name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, v != nil
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, v != nil
		}
	}
	return nil, false
}

// typeName describes a decoded JSON value for error messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, float32, int, int32, int64, uint16, uint32, json.Number:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// parseAddress classifies an intercepted address: an IP address, a CIDR,
// "*.domain" or a hostname.
func parseAddress(s string) (Address, error) {
	if s == "" {
		return Address{}, fmt.Errorf("empty address")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Address{}, fmt.Errorf("%q is not a valid CIDR", s)
		}
		if p.Addr().Is4In6() {
			return Address{}, fmt.Errorf("%q is an IPv4-mapped IPv6 CIDR; give the IPv4 CIDR", s)
		}
		return Address{Kind: Prefix, Prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return Address{}, fmt.Errorf("%q has a zone", s)
		}
		a = a.Unmap()
		return Address{Kind: Prefix, Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	if domain, ok := strings.CutPrefix(name, "*."); ok {
		if err := checkHostname(domain); err != nil {
			return Address{}, fmt.Errorf("wildcard %q: %w", s, err)
		}
		return Address{Kind: Wildcard, Name: name}, nil
	}
	if err := checkHostname(name); err != nil {
		return Address{}, fmt.Errorf("%q is not an IP address, CIDR or hostname: %w", s, err)
	}
	return Address{Kind: Hostname, Name: name}, nil
}

// checkHostname checks the syntax of a lower-case DNS name without its
// trailing dot: at most 253 bytes, labels of 1 to 63 letters, digits,
// hyphens and underscores, not starting or ending with a hyphen, and a
// last label that is not all digits (that would be a mistyped IP address).
func checkHostname(name string) error {
	if name == "" {
		return fmt.Errorf("empty name")
	}
	if len(name) > 253 {
		return fmt.Errorf("%d bytes, at most 253", len(name))
	}
	labels := strings.Split(name, ".")
	for _, label := range labels {
		if label == "" {
			return fmt.Errorf("empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("label %q is %d bytes, at most 63", label, len(label))
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("label %q has the character %q", label, c)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("the last label %q is numeric", last)
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
