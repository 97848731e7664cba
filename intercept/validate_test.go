package intercept

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// validIntercept returns a small valid intercept that tests change one
// field of.
func validIntercept() Intercept {
	return Intercept{
		ServiceID:   "3Tq9svc",
		ServiceName: "web",
		Protocols:   []Protocol{TCP},
		Addresses:   []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")},
		Ports:       []PortRange{{Low: 80, High: 80}},
		TProxyPort:  7000,
	}
}

func TestValidateAcceptsAValidIntercept(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Intercept)
	}{
		{"minimal", func(*Intercept) {}},
		{"service id at the limit", func(ic *Intercept) { ic.ServiceID = strings.Repeat("a", 32) }},
		{"service name at the limit", func(ic *Intercept) { ic.ServiceName = strings.Repeat("n", 63) }},
		{"service name with spaces and UTF-8", func(ic *Intercept) { ic.ServiceName = "Zürich web — prod" }},
		{"no service name", func(ic *Intercept) { ic.ServiceName = "" }},
		{"both protocols", func(ic *Intercept) { ic.Protocols = []Protocol{UDP, TCP} }},
		{"duplicate protocols", func(ic *Intercept) { ic.Protocols = []Protocol{TCP, TCP} }},
		{"IPv6 and unmasked addresses", func(ic *Intercept) {
			ic.Addresses = []netip.Prefix{netip.MustParsePrefix("fd00::1/64"), netip.MustParsePrefix("10.0.0.5/24"), netip.MustParsePrefix("0.0.0.0/0")}
		}},
		{"mapped address that masks to a plain IPv6 prefix", func(ic *Intercept) {
			ic.Addresses = []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.1/64")}
		}},
		{"whole port space", func(ic *Intercept) { ic.Ports = []PortRange{{Low: 1, High: 65535}} }},
		{"source prefixes", func(ic *Intercept) {
			ic.SourcePrefixes = []netip.Prefix{netip.MustParsePrefix("192.168.1.7/16"), netip.MustParsePrefix("::/0")}
		}},
		{"interfaces at the limit", func(ic *Intercept) {
			for k := range 8 {
				ic.Interfaces = append(ic.Interfaces, fmt.Sprintf("eth%d", k))
			}
		}},
		{"more than 8 interface entries but 8 distinct", func(ic *Intercept) {
			for k := range 8 {
				ic.Interfaces = append(ic.Interfaces, fmt.Sprintf("eth%d", k))
			}
			ic.Interfaces = append(ic.Interfaces, "eth0", "eth1")
		}},
		{"15-byte interface name", func(ic *Intercept) { ic.Interfaces = []string{"abcdefghijklmno"} }},
		{"interface name with dots and dashes", func(ic *Intercept) { ic.Interfaces = []string{"br-lan.10", "...", "veth@x"} }},
		{"tproxy port 65535", func(ic *Intercept) { ic.TProxyPort = 65535 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ic := validIntercept()
			tc.mutate(&ic)
			if err := ic.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if err := ic.Normalize().Validate(); err != nil {
				t.Fatalf("Normalize().Validate() = %v, want nil", err)
			}
		})
	}
}

func TestValidateErrorNamesFieldAndLimit(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Intercept)
		field  string
		value  string
		says   string // in the message: the limit or the reason
	}{
		{"empty service id", func(ic *Intercept) { ic.ServiceID = "" },
			"service id", "", "required"},
		{"service id too long", func(ic *Intercept) { ic.ServiceID = strings.Repeat("a", 40) },
			"service id", strings.Repeat("a", 40), "40 bytes, at most 32"},
		{"service id with a space", func(ic *Intercept) { ic.ServiceID = "a b" },
			"service id", "a b", "byte 1 is 0x20; only printable ASCII without spaces"},
		{"service id with non-ASCII", func(ic *Intercept) { ic.ServiceID = "svcé" },
			"service id", "svcé", "byte 3 is 0xc3; only printable ASCII"},
		{"service id with a control byte", func(ic *Intercept) { ic.ServiceID = "svc\x00" },
			"service id", "svc\x00", "byte 3 is 0x00"},
		{"service name too long", func(ic *Intercept) { ic.ServiceName = strings.Repeat("n", 64) },
			"service name", strings.Repeat("n", 64), "64 bytes, at most 63"},
		{"service name with NUL", func(ic *Intercept) { ic.ServiceName = "we\x00b" },
			"service name", "we\x00b", "byte 2 is the control character 0x00"},
		{"service name with newline", func(ic *Intercept) { ic.ServiceName = "web\n" },
			"service name", "web\n", "control character 0x0a"},
		{"service name not UTF-8", func(ic *Intercept) { ic.ServiceName = "web\xff" },
			"service name", "web\xff", "not valid UTF-8"},
		{"no protocols", func(ic *Intercept) { ic.Protocols = nil },
			"protocols", "", "at least one of tcp, udp required"},
		{"unknown protocol", func(ic *Intercept) { ic.Protocols = []Protocol{TCP, "sctp"} },
			"protocols[1]", "sctp", `unknown protocol "sctp"; want tcp or udp`},
		{"upper-case protocol", func(ic *Intercept) { ic.Protocols = []Protocol{"TCP"} },
			"protocols[0]", "TCP", "want tcp or udp"},
		{"no addresses", func(ic *Intercept) { ic.Addresses = nil },
			"addresses", "", "at least one prefix required"},
		{"zero prefix", func(ic *Intercept) { ic.Addresses = append(ic.Addresses, netip.Prefix{}) },
			"addresses[1]", "", "not a valid prefix"},
		{"prefix longer than the address", func(ic *Intercept) {
			ic.Addresses = []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.0.0.1"), 33)}
		}, "addresses[0]", "invalid Prefix", "not a valid prefix"},
		{"IPv4-mapped IPv6 address", func(ic *Intercept) {
			ic.Addresses = []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}
		}, "addresses[0]", "::ffff:10.0.0.0/104", "IPv4-mapped IPv6 prefix; give the IPv4 prefix"},
		{"no ports", func(ic *Intercept) { ic.Ports = nil },
			"ports", "", "at least one port range required"},
		{"low port 0", func(ic *Intercept) { ic.Ports = []PortRange{{Low: 0, High: 10}} },
			"ports[0]", "0-10", "low port 0; ports are 1 to 65535"},
		{"port 0 alone", func(ic *Intercept) { ic.Ports = []PortRange{{}} },
			"ports[0]", "0", "low port 0"},
		{"low above high", func(ic *Intercept) { ic.Ports = []PortRange{{Low: 80, High: 80}, {Low: 90, High: 80}} },
			"ports[1]", "90-80", "low 90 > high 80"},
		{"zero source prefix", func(ic *Intercept) { ic.SourcePrefixes = []netip.Prefix{{}} },
			"source prefixes[0]", "", "not a valid prefix"},
		{"IPv4-mapped IPv6 source", func(ic *Intercept) {
			ic.SourcePrefixes = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("::ffff:192.168.0.1/128")}
		}, "source prefixes[1]", "::ffff:192.168.0.1/128", "IPv4-mapped"},
		{"too many interfaces", func(ic *Intercept) {
			for k := range 9 {
				ic.Interfaces = append(ic.Interfaces, fmt.Sprintf("eth%d", k))
			}
		}, "interfaces", "", "9 distinct names, at most 8"},
		{"empty interface name", func(ic *Intercept) { ic.Interfaces = []string{"eth0", ""} },
			"interfaces[1]", "", "name is 0 bytes; interface names are 1 to 15 bytes"},
		{"interface name too long", func(ic *Intercept) { ic.Interfaces = []string{"abcdefghijklmnop"} },
			"interfaces[0]", "abcdefghijklmnop", "name is 16 bytes; interface names are 1 to 15 bytes"},
		{"interface name with slash", func(ic *Intercept) { ic.Interfaces = []string{"eth/0"} },
			"interfaces[0]", "eth/0", "byte 3 is 0x2f; NUL, '/', ':' and whitespace are not allowed"},
		{"interface name with colon", func(ic *Intercept) { ic.Interfaces = []string{"eth0:1"} },
			"interfaces[0]", "eth0:1", "byte 4 is 0x3a"},
		{"interface name with space", func(ic *Intercept) { ic.Interfaces = []string{"eth 0"} },
			"interfaces[0]", "eth 0", "byte 3 is 0x20"},
		{"interface name with tab", func(ic *Intercept) { ic.Interfaces = []string{"\teth0"} },
			"interfaces[0]", "\teth0", "byte 0 is 0x09"},
		{"interface name with NUL", func(ic *Intercept) { ic.Interfaces = []string{"eth0\x00"} },
			"interfaces[0]", "eth0\x00", "byte 4 is 0x00"},
		{"interface named dot", func(ic *Intercept) { ic.Interfaces = []string{"."} },
			"interfaces[0]", ".", `"." is not an interface name`},
		{"interface named dot dot", func(ic *Intercept) { ic.Interfaces = []string{".."} },
			"interfaces[0]", "..", `".." is not an interface name`},
		{"tproxy port 0", func(ic *Intercept) { ic.TProxyPort = 0 },
			"tproxy port", "", "required; the listener port is 1 to 65535"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ic := validIntercept()
			tc.mutate(&ic)
			err := ic.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if fe.Field != tc.field {
				t.Errorf("Field = %q, want %q", fe.Field, tc.field)
			}
			if fe.Value != tc.value {
				t.Errorf("Value = %q, want %q", fe.Value, tc.value)
			}
			if fe.ServiceID != ic.ServiceID {
				t.Errorf("ServiceID = %q, want %q", fe.ServiceID, ic.ServiceID)
			}
			want := fmt.Sprintf("intercept %q: %s: ", ic.ServiceID, tc.field)
			if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.Contains(msg, tc.says) {
				t.Errorf("message %q, want it to start with %q and say %q", msg, want, tc.says)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("one problem, but the message has several lines: %q", err)
			}
			if err := ic.Normalize().Validate(); err == nil {
				t.Error("the normalised copy is valid")
			}
			if rules, err := ic.Rules(nil); err == nil || rules != nil {
				t.Errorf("Rules() = %d rules, %v; want the validation error", len(rules), err)
			}
			if n := ic.RuleCount(); n != 0 {
				t.Errorf("RuleCount() = %d for an invalid intercept, want 0", n)
			}
		})
	}
}

func TestFieldErrorMessage(t *testing.T) {
	err := &FieldError{ServiceID: "svc1", Field: "ports[1]", Value: "90-80", Reason: "low 90 > high 80"}
	if got, want := err.Error(), `intercept "svc1": ports[1]: low 90 > high 80`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestValidateReportsEveryProblemInFieldOrder(t *testing.T) {
	ic := Intercept{
		ServiceID:  "svc",
		Protocols:  []Protocol{"sctp", TCP, "icmp"},
		Addresses:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}},
		Ports:      []PortRange{{Low: 9, High: 1}},
		Interfaces: []string{"a/b"},
	}
	err := ic.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate() = %T, want joined errors", err)
	}
	var fields []string
	for _, e := range joined.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("joined error %v (%T) is not a *FieldError", e, e)
		}
		fields = append(fields, fe.Field)
	}
	want := []string{"protocols[0]", "protocols[2]", "addresses[1]", "ports[0]", "interfaces[0]", "tproxy port"}
	if fmt.Sprint(fields) != fmt.Sprint(want) {
		t.Errorf("fields %v, want %v", fields, want)
	}
	var first *FieldError
	if errors.As(err, &first); first == nil || first.Field != "protocols[0]" {
		t.Errorf("errors.As found %v, want the first problem", first)
	}
	if lines := strings.Count(err.Error(), "\n") + 1; lines != len(want) {
		t.Errorf("message has %d lines, want one per problem:\n%s", lines, err)
	}
}
