package intercept

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/internal/policy"
)

// Record kinds of the fuzzer's byte stream (see decodeLists).
const (
	fuzzAddress = iota
	fuzzPort
	fuzzSource
	fuzzKinds
)

// decodeLists turns bytes into addresses, ports and source prefixes. Each
// record is a kind byte then:
//   - address or source: a family byte (0 IPv4, 1 IPv6, 2 IPv4-mapped IPv6,
//     3 zero Prefix), the address bytes, and a length byte that may exceed
//     the address's bit length;
//   - port range: low and high, big-endian.
//
// A truncated record ends the stream.
func decodeLists(data []byte) (addrs []netip.Prefix, ports []PortRange, sources []netip.Prefix) {
	for len(data) > 0 {
		kind := data[0] % fuzzKinds
		data = data[1:]
		switch kind {
		case fuzzPort:
			if len(data) < 4 {
				return
			}
			ports = append(ports, PortRange{uint16(data[0])<<8 | uint16(data[1]), uint16(data[2])<<8 | uint16(data[3])})
			data = data[4:]
		default:
			if len(data) < 1 {
				return
			}
			var p netip.Prefix
			family := data[0] % 4
			data = data[1:]
			size := 4
			if family == 1 || family == 2 {
				size = 16
			}
			if family != 3 {
				if len(data) < size+1 {
					return
				}
				var a netip.Addr
				switch family {
				case 0:
					a = netip.AddrFrom4([4]byte(data[:4]))
				case 1:
					a = netip.AddrFrom16([16]byte(data[:16]))
				case 2:
					a = netip.AddrFrom16(netip.AddrFrom4([4]byte(data[:4])).As16())
				}
				p = netip.PrefixFrom(a, int(data[size])%140)
				data = data[size+1:]
			}
			if kind == fuzzAddress {
				addrs = append(addrs, p)
			} else {
				sources = append(sources, p)
			}
		}
	}
	return
}

// fuzzResolver resolves names deterministically and fails for names with
// a '?'.
func fuzzResolver(name string) (int, error) {
	if strings.Contains(name, "?") {
		return 0, errors.New("no such interface")
	}
	return 1 + len(name)%4, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func FuzzValidateAndRules(f *testing.F) {
	v4 := func(a, b, c, d, bits byte) []byte { return []byte{fuzzAddress, 0, a, b, c, d, bits} }
	src4 := func(a, b, c, d, bits byte) []byte { return []byte{fuzzSource, 0, a, b, c, d, bits} }
	v6 := func(bits byte, addr ...byte) []byte {
		rec := []byte{fuzzAddress, 1}
		rec = append(rec, make([]byte, 16)...)
		copy(rec[2:], addr)
		return append(rec, bits)
	}
	port := func(lo, hi uint16) []byte {
		return []byte{fuzzPort, byte(lo >> 8), byte(lo), byte(hi >> 8), byte(hi)}
	}
	join := func(recs ...[]byte) []byte { return slices.Concat(recs...) }

	f.Add("svc", "web", "tcp", join(v4(10, 0, 0, 0, 8), port(80, 80)), "", uint16(7000))
	f.Add("svc", "", "tcp,udp,tcp", join(v4(10, 0, 0, 5, 24), v6(64, 0xfd), port(443, 443), port(8000, 8100), src4(192, 168, 0, 0, 16)), "eth0,eth1,eth0", uint16(1))
	f.Add("x", "", "udp", join(v6(128, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), port(65535, 65535), src4(0, 0, 0, 0, 0)), "eth?", uint16(65535))
	f.Add("", "\x00", "sctp,", join(v4(1, 2, 3, 4, 99), port(0, 0), port(9, 1)), "a/b,.,", uint16(0))
	f.Add("a b", strings.Repeat("n", 64), "", join([]byte{fuzzAddress, 2, 10, 0, 0, 1}, make([]byte, 12), []byte{104, fuzzSource, 3}), "1,2,3,4,5,6,7,8,9", uint16(5))
	f.Add(strings.Repeat("i", 33), "", "tcp", []byte{fuzzAddress}, "abcdefghijklmnop", uint16(5))

	f.Fuzz(func(t *testing.T, id, name, protos string, data []byte, ifnames string, tproxy uint16) {
		addrs, ports, sources := decodeLists(data)
		ic := Intercept{
			ServiceID:      id,
			ServiceName:    name,
			Addresses:      addrs,
			Ports:          ports,
			SourcePrefixes: sources,
			Interfaces:     splitList(ifnames),
			TProxyPort:     tproxy,
		}
		for _, p := range splitList(protos) {
			ic.Protocols = append(ic.Protocols, Protocol(p))
		}

		n := ic.Normalize()
		if again := n.Normalize(); !reflect.DeepEqual(again, n) {
			t.Fatalf("Normalize is not idempotent:\n%+v\n%+v", n, again)
		}
		if !ic.Equal(n) || !n.Equal(ic) {
			t.Fatal("an intercept is not Equal to its normalised copy")
		}
		if d, err := Diff([]Intercept{ic}, []Intercept{n}); err != nil || !d.Empty() {
			t.Fatalf("Diff against the normalised copy = %+v, %v", d, err)
		}

		err := ic.Validate()
		if nerr := n.Validate(); (err == nil) != (nerr == nil) {
			t.Fatalf("Validate() = %v but on the normalised copy %v", err, nerr)
		}
		rules, rerr := ic.Rules(fuzzResolver)
		if err != nil {
			checkFieldErrors(t, ic.ServiceID, err)
			if rules != nil || rerr == nil {
				t.Fatalf("invalid intercept (%v) expanded to %d rules, %v", err, len(rules), rerr)
			}
			if c := ic.RuleCount(); c != 0 {
				t.Fatalf("RuleCount() = %d for an invalid intercept", c)
			}
			return
		}
		if rerr != nil {
			if !slices.ContainsFunc(ic.Interfaces, func(s string) bool { return strings.Contains(s, "?") }) {
				t.Fatalf("Rules() = %v for a valid intercept with resolvable interfaces", rerr)
			}
			return
		}
		if c := ic.RuleCount(); c != len(rules) {
			t.Fatalf("RuleCount() = %d, Rules() returned %d", c, len(rules))
		}
		nrules, nerr := n.Rules(fuzzResolver)
		if nerr != nil || !reflect.DeepEqual(nrules, rules) {
			t.Fatalf("the normalised copy expands differently: %v", nerr)
		}
		seen := make(map[string]bool, len(rules))
		for _, r := range rules {
			checkRule(t, ic, r)
			k := ruleKey(r)
			if seen[k] {
				t.Fatalf("rule %s twice", k)
			}
			seen[k] = true
		}
	})
}

// checkFieldErrors checks that err joins only *FieldErrors of the service.
func checkFieldErrors(t *testing.T, serviceID string, err error) {
	t.Helper()
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		fe, ok := e.(*FieldError)
		if !ok {
			t.Fatalf("Validate() error %v is %T, want *FieldError", e, e)
		}
		if fe.ServiceID != serviceID || fe.Field == "" || fe.Reason == "" {
			t.Fatalf("incomplete FieldError %+v", fe)
		}
	}
}

// checkRule checks one rule of a valid intercept's expansion.
func checkRule(t *testing.T, ic Intercept, r policy.Rule) {
	t.Helper()
	switch {
	case r.Action != policy.ActionTProxy || r.TProxyPort != ic.TProxyPort:
		t.Fatalf("rule %+v does not steer to %d", r, ic.TProxyPort)
	case r.ServiceID != ic.ServiceID || r.ServiceName != ic.ServiceName:
		t.Fatalf("rule %+v is not tagged with the service", r)
	case r.Proto != policy.ProtoTCP && r.Proto != policy.ProtoUDP:
		t.Fatalf("rule %+v has protocol %d", r, r.Proto)
	case r.PortLow == 0 || r.PortLow > r.PortHigh:
		t.Fatalf("rule %+v has ports %d-%d", r, r.PortLow, r.PortHigh)
	case !r.Dst.IsValid() || r.Dst != r.Dst.Masked() || r.Dst.Addr().Is4In6():
		t.Fatalf("rule %+v has destination %v", r, r.Dst)
	case r.Src != (netip.Prefix{}) && (r.Src != r.Src.Masked() || r.Src.Bits() == 0 || r.Src.Addr().Is4() != r.Dst.Addr().Is4()):
		t.Fatalf("rule %+v has source %v", r, r.Src)
	case len(r.Interfaces) > policy.MaxRuleInterfaces || !slices.IsSorted(r.Interfaces) || len(slices.Compact(slices.Clone(r.Interfaces))) != len(r.Interfaces):
		t.Fatalf("rule %+v has interfaces %v", r, r.Interfaces)
	case len(r.Interfaces) == 0 && len(ic.Interfaces) > 0:
		t.Fatalf("rule %+v lost the interfaces %v", r, ic.Interfaces)
	}
}
