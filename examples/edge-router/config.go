package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/ddos"
)

// Config is an ebpf_config.json: the C zfw's router configuration
// (InternalInterfaces, ExternalInterfaces with Name,
// OutboundPassThroughTrack and PerInterfaceRules) plus zfw-go's
// per-interface settings and the DDoS and OT sections. Field names are
// matched exactly; unknown ones are refused.
type Config struct {
	// InternalInterfaces face the clients whose traffic the router
	// intercepts (the router's lanIf).
	InternalInterfaces []InterfaceConfig `json:"InternalInterfaces"`
	// ExternalInterfaces face the outside.
	ExternalInterfaces []InterfaceConfig `json:"ExternalInterfaces"`
	// DDoS tunes SYN-flood protection of interfaces with DDoSProtection.
	DDoS *DDoSConfig `json:"DDoS"`
	// OT configures industrial-protocol filtering of interfaces with
	// OTFiltering.
	OT *OTConfig `json:"OT"`
}

// InterfaceConfig is one interface of a Config. Name,
// OutboundPassThroughTrack and PerInterfaceRules are the C zfw's; the
// others are zfw-go's and map one to one onto zfw.InterfaceSettings.
//
// The mapping, internal / external defaults in brackets:
//
//	Name                      the interface; it must exist
//	DefaultDeny               zfw.InterfaceSettings.DefaultDeny [false / true]:
//	                          a host firewall; only rules and replies of
//	                          sessions opened outwards get in
//	OutboundPassThroughTrack  [true / true] sessions opened outwards through
//	                          the interface are tracked and their replies
//	                          admitted. zfw-go always tracks, so false is
//	                          refused on a DefaultDeny interface (and means
//	                          nothing on one that is not)
//	PerInterfaceRules         zfw.InterfaceSettings.PerInterfaceRules [false / true]
//	Masquerade                zfw.InterfaceSettings.Masquerade [false]; external only
//	Verbose, ICMPEcho, DisableSSH, VRRP, EAPOL, PassNonTuple, DisableIPv6,
//	OutboundFilter, DDoSProtection, OTFiltering
//	                          the zfw.InterfaceSettings fields of those names [false]
type InterfaceConfig struct {
	Name                     string `json:"Name"`
	OutboundPassThroughTrack *bool  `json:"OutboundPassThroughTrack"`
	PerInterfaceRules        *bool  `json:"PerInterfaceRules"`
	DefaultDeny              *bool  `json:"DefaultDeny"`
	Masquerade               bool   `json:"Masquerade"`
	Verbose                  bool   `json:"Verbose"`
	ICMPEcho                 bool   `json:"ICMPEcho"`
	DisableSSH               bool   `json:"DisableSSH"`
	VRRP                     bool   `json:"VRRP"`
	EAPOL                    bool   `json:"EAPOL"`
	PassNonTuple             bool   `json:"PassNonTuple"`
	DisableIPv6              bool   `json:"DisableIPv6"`
	OutboundFilter           bool   `json:"OutboundFilter"`
	DDoSProtection           bool   `json:"DDoSProtection"`
	OTFiltering              bool   `json:"OTFiltering"`
}

// DDoSConfig is the SYN-flood protection of the interfaces that set
// DDoSProtection (the C zfw's -u/--ddos-dport-add, with a threshold the
// C zfw lacks).
type DDoSConfig struct {
	// ProtectedPorts limits SYN counting to these destination ports;
	// none means every port.
	ProtectedPorts []int `json:"ProtectedPorts"`
	// SYNsPerSecond a source may send before it is banned (default 100).
	SYNsPerSecond int `json:"SYNsPerSecond"`
	// BanDuration is how long a ban lasts, as a Go duration ("5m",
	// the default).
	BanDuration string `json:"BanDuration"`
}

// OTConfig is the industrial-protocol filtering of the interfaces that
// set OTFiltering (the C zfw's -g/--dnp3-fcode-add).
type OTConfig struct {
	// DNP3FunctionCodes are the allowed DNP3 function codes, 0 to 255.
	DNP3FunctionCodes []int `json:"DNP3FunctionCodes"`
}

// ParseConfig decodes an ebpf_config.json. It checks the syntax and the
// field names and types; Validate checks the values.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := decodeStrict(data, &c, ""); err != nil {
		return nil, err
	}
	return &c, nil
}

// interfaceRef is an interface of a Config with where it is listed.
type interfaceRef struct {
	path     string // "InternalInterfaces[0]"
	external bool
	*InterfaceConfig
}

func (c *Config) interfaces() []interfaceRef {
	var refs []interfaceRef
	for i := range c.InternalInterfaces {
		refs = append(refs, interfaceRef{fmt.Sprintf("InternalInterfaces[%d]", i), false, &c.InternalInterfaces[i]})
	}
	for i := range c.ExternalInterfaces {
		refs = append(refs, interfaceRef{fmt.Sprintf("ExternalInterfaces[%d]", i), true, &c.ExternalInterfaces[i]})
	}
	return refs
}

// Validate checks the values of c and reports every problem, each
// naming its field. lookup says whether an interface exists (nil checks
// nothing).
func (c *Config) Validate(lookup func(name string) error) error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	refs := c.interfaces()
	if len(refs) == 0 {
		bad("InternalInterfaces, ExternalInterfaces", "no interface listed")
	}
	seen := make(map[string]string)
	var ddos, ot bool
	for _, r := range refs {
		name := r.Name
		switch {
		case name == "":
			bad(r.path+".Name", "missing")
			continue
		case len(name) > 15 || strings.ContainsFunc(name, func(c rune) bool { return c == '/' || c <= ' ' || c == 0x7f }):
			bad(r.path+".Name", "%q is not an interface name", name)
			continue
		case strings.HasPrefix(name, "ziti"):
			bad(r.path+".Name", "%s: a Ziti tun is not a router interface", name)
		}
		if first, ok := seen[name]; ok {
			bad(r.path+".Name", "%s is listed already as %s", name, first)
		} else {
			seen[name] = r.path
		}
		if lookup != nil {
			if err := lookup(name); err != nil {
				bad(r.path+".Name", "%v", err)
			}
		}
		s := r.settings()
		if r.OutboundPassThroughTrack != nil && !*r.OutboundPassThroughTrack && s.DefaultDeny {
			bad(r.path+".OutboundPassThroughTrack", "false is not supported: zfw-go always admits replies of sessions opened outwards through a DefaultDeny interface (set DefaultDeny: false for an interface that is not firewalled)")
		}
		if r.Masquerade && !r.external {
			bad(r.path+".Masquerade", "only external interfaces masquerade")
		}
		ddos = ddos || r.DDoSProtection
		ot = ot || r.OTFiltering
	}
	if d := c.DDoS; d != nil {
		if !ddos {
			bad("DDoS", "no interface sets DDoSProtection")
		}
		for i, p := range d.ProtectedPorts {
			if p < 1 || p > 65535 {
				bad(fmt.Sprintf("DDoS.ProtectedPorts[%d]", i), "%d is not a port (1-65535)", p)
			}
		}
		if d.SYNsPerSecond < 0 {
			bad("DDoS.SYNsPerSecond", "%d is negative", d.SYNsPerSecond)
		}
		if d.BanDuration != "" {
			if v, err := time.ParseDuration(d.BanDuration); err != nil || v <= 0 {
				bad("DDoS.BanDuration", "%q is not a positive duration such as \"5m\"", d.BanDuration)
			}
		}
	}
	if o := c.OT; o != nil {
		if !ot {
			bad("OT", "no interface sets OTFiltering")
		}
		for i, code := range o.DNP3FunctionCodes {
			if code < 0 || code > 255 {
				bad(fmt.Sprintf("OT.DNP3FunctionCodes[%d]", i), "%d is not a function code (0-255)", code)
			}
		}
	}
	return errors.Join(errs...)
}

// settings are the interface's zfw settings, defaults applied.
func (r interfaceRef) settings() zfw.InterfaceSettings {
	return zfw.InterfaceSettings{
		DefaultDeny:       orDefault(r.DefaultDeny, r.external),
		PerInterfaceRules: orDefault(r.PerInterfaceRules, r.external),
		Masquerade:        r.Masquerade,
		Verbose:           r.Verbose,
		ICMPEcho:          r.ICMPEcho,
		DisableSSH:        r.DisableSSH,
		VRRP:              r.VRRP,
		EAPOL:             r.EAPOL,
		PassNonTuple:      r.PassNonTuple,
		DisableIPv6:       r.DisableIPv6,
		OutboundFilter:    r.OutboundFilter,
		DDoSProtection:    r.DDoSProtection,
		OTFiltering:       r.OTFiltering,
	}
}

func orDefault(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// Interfaces are the interfaces to attach, internal ones first, with
// their settings. c must be valid.
func (c *Config) Interfaces() []zfw.Interface {
	var list []zfw.Interface
	for _, r := range c.interfaces() {
		list = append(list, zfw.Interface{Name: r.Name, InterfaceSettings: r.settings()})
	}
	return list
}

// SYNFlood is the DDoS threshold of zfw.Options. c must be valid.
func (c *Config) SYNFlood() ddos.SYNFlood {
	if c.DDoS == nil {
		return ddos.SYNFlood{}
	}
	s := ddos.SYNFlood{SYNsPerSecond: c.DDoS.SYNsPerSecond}
	if c.DDoS.BanDuration != "" {
		s.BanDuration, _ = time.ParseDuration(c.DDoS.BanDuration)
	}
	return s
}

// decodeStrict decodes one JSON value into v, a pointer to a struct,
// a slice of structs or a plain value. Object keys must equal a json
// tag exactly (encoding/json alone would also take "name" for "Name"),
// and errors name the offending field by its path from the top (path
// is the prefix, "" at the top).
func decodeStrict(data []byte, v any, path string) error {
	return decodeValue(data, reflect.ValueOf(v).Elem(), path)
}

func decodeValue(data []byte, v reflect.Value, path string) error {
	if v.Kind() == reflect.Pointer {
		if string(bytes.TrimSpace(data)) == "null" {
			v.SetZero()
			return nil
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeValue(data, v.Elem(), path)
	}
	switch {
	case v.Kind() == reflect.Struct && !v.Type().Implements(unmarshalerType) && !v.Addr().Type().Implements(unmarshalerType):
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(data, &fields); err != nil {
			return jsonError(data, err, path, "an object")
		}
		tags := make(map[string]int)
		var names []string
		for i := range v.NumField() {
			tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			tags[tag] = i
			names = append(names, tag)
		}
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			i, ok := tags[k]
			if !ok {
				return fmt.Errorf("%s: unknown field (known: %s)", join(path, k), strings.Join(names, ", "))
			}
			if err := decodeValue(fields[k], v.Field(i), join(path, k)); err != nil {
				return err
			}
		}
		return nil
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			return jsonError(data, err, path, "a list")
		}
		if items == nil {
			v.SetZero()
			return nil
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			if err := decodeValue(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	}
	if err := json.Unmarshal(data, v.Addr().Interface()); err != nil {
		return jsonError(data, err, path, "")
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonError words a decoding error of the value at path.
func jsonError(data []byte, err error, path, want string) error {
	where := path
	if where == "" {
		where = "top level"
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset-1) // Offset counts the bad byte
		return fmt.Errorf("%s: bad JSON at line %d, column %d: %v", where, line, col, syn)
	case errors.As(err, &typ):
		if want == "" {
			want = typ.Type.String()
			switch typ.Type.Kind() {
			case reflect.Bool:
				want = "true or false"
			case reflect.String:
				want = "a string"
			case reflect.Int, reflect.Uint16, reflect.Uint8:
				want = "a whole number in range"
			case reflect.Slice:
				want = "a list"
			}
		}
		return fmt.Errorf("%s: %s is not %s", where, short(data), want)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// short is a JSON value for a message, cut if long.
func short(data []byte) string {
	s := string(data)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

// position is the line and column (from 1) of a byte offset of data.
func position(data []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = 1 + len(before) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, col
}
