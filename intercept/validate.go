package intercept

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"unicode/utf8"

	"github.com/zfw-go/zfw/internal/policy"
)

// maxIfnameLen is the longest Linux interface name: IFNAMSIZ (16) less the
// terminating NUL.
const maxIfnameLen = 15

// FieldError is one problem with one field of an intercept.
//
// Its message names the service, the field and the reason, and the reason
// states the limit that was broken:
//
//	intercept "svc1": ports[1]: low 90 > high 80
//	intercept "svc1": service id: 40 bytes, at most 32
type FieldError struct {
	// ServiceID is the service id of the intercept, possibly invalid.
	ServiceID string
	// Field names the field as "service id", "service name", "protocols",
	// "addresses", "ports", "source prefixes", "interfaces" or
	// "tproxy port", followed by the index for one element of a list:
	// "ports[1]".
	Field string
	// Value is the offending value as text, empty when the problem is a
	// missing value or the length of a list.
	Value string
	// Reason says what is wrong and what is allowed.
	Reason string
}

// Error returns `intercept "<service id>": <field>: <reason>`.
func (e *FieldError) Error() string {
	return fmt.Sprintf("intercept %q: %s: %s", e.ServiceID, e.Field, e.Reason)
}

// Validate reports every problem with the intercept, or nil if there is
// none. The returned error joins (errors.Join) one *FieldError per
// problem, in field order and then element order; errors.As(err, &fe)
// finds the first. The rules are:
//
//   - ServiceID: required; at most policy.MaxServiceIDLen bytes; only
//     printable ASCII, no spaces.
//   - ServiceName: at most policy.MaxServiceNameLen bytes; valid UTF-8; no ASCII
//     control characters (the dataplane stores it NUL-terminated, and
//     listings print it).
//   - Protocols: at least one; each TCP or UDP. Duplicates are allowed.
//   - Addresses: at least one; each a valid prefix that is not
//     IPv4-mapped IPv6 once masked.
//   - Ports: at least one; each with 1 ≤ Low ≤ High.
//   - SourcePrefixes: each a valid prefix that is not IPv4-mapped IPv6
//     once masked.
//   - Interfaces: at most policy.MaxRuleInterfaces distinct names; each
//     1 to 15 bytes, not "." or "..", without NUL, '/', ':' or
//     whitespace (the rules of the Linux kernel).
//   - TProxyPort: not 0.
//
// Duplicates never make an intercept invalid, so an intercept and its
// Normalize form are valid or invalid together.
func (i Intercept) Validate() error {
	var errs []error
	bad := func(field, value, format string, args ...any) {
		errs = append(errs, &FieldError{
			ServiceID: i.ServiceID,
			Field:     field,
			Value:     value,
			Reason:    fmt.Sprintf(format, args...),
		})
	}

	if i.ServiceID == "" {
		bad("service id", "", "required")
	} else if err := CheckServiceID(i.ServiceID); err != nil {
		bad("service id", i.ServiceID, "%v", err)
	}
	if err := CheckServiceName(i.ServiceName); err != nil {
		bad("service name", i.ServiceName, "%v", err)
	}

	if len(i.Protocols) == 0 {
		bad("protocols", "", "at least one of tcp, udp required")
	}
	for k, p := range i.Protocols {
		if p != TCP && p != UDP {
			bad(index("protocols", k), string(p), "unknown protocol %q; want tcp or udp", string(p))
		}
	}

	if len(i.Addresses) == 0 {
		bad("addresses", "", "at least one prefix required")
	}
	for k, p := range i.Addresses {
		if err := CheckPrefix(p); err != nil {
			bad(index("addresses", k), prefixText(p), "%v", err)
		}
	}

	if len(i.Ports) == 0 {
		bad("ports", "", "at least one port range required")
	}
	for k, r := range i.Ports {
		switch {
		case r.Low == 0:
			bad(index("ports", k), r.String(), "low port 0; ports are 1 to 65535")
		case r.Low > r.High:
			bad(index("ports", k), fmt.Sprintf("%d-%d", r.Low, r.High), "low %d > high %d", r.Low, r.High)
		}
	}

	for k, p := range i.SourcePrefixes {
		if err := CheckPrefix(p); err != nil {
			bad(index("source prefixes", k), prefixText(p), "%v", err)
		}
	}

	if n := len(sortedSet(i.Interfaces, cmp.Compare[string])); n > policy.MaxRuleInterfaces {
		bad("interfaces", "", "%d distinct names, at most %d", n, policy.MaxRuleInterfaces)
	}
	for k, name := range i.Interfaces {
		if err := CheckInterfaceName(name); err != nil {
			bad(index("interfaces", k), name, "%v", err)
		}
	}

	if i.TProxyPort == 0 {
		bad("tproxy port", "", "required; the listener port is 1 to 65535")
	}

	return errors.Join(errs...)
}

// index names element k of a list field.
func index(field string, k int) string {
	return fmt.Sprintf("%s[%d]", field, k)
}

// The checks below are the ones Validate applies to each field, for the
// other ways in (the rules API, the control socket, the CLI) to apply the
// same. Each error says what is wrong with the value, not which field it
// was: the caller names that.

// CheckServiceID reports why id cannot be a service id: more than
// policy.MaxServiceIDLen bytes, or a byte that is not printable ASCII (or
// is a space). The dataplane stores ids, and listings print them.
func CheckServiceID(id string) error {
	if len(id) > policy.MaxServiceIDLen {
		return fmt.Errorf("%d bytes, at most %d", len(id), policy.MaxServiceIDLen)
	}
	for k := 0; k < len(id); k++ {
		if c := id[k]; c <= ' ' || c > '~' {
			return fmt.Errorf("byte %d is %#02x; only printable ASCII without spaces is allowed", k, c)
		}
	}
	return nil
}

// CheckServiceName reports why name cannot be a service name: more than
// policy.MaxServiceNameLen bytes, not valid UTF-8, or an ASCII control
// character (the dataplane stores it NUL-terminated, and listings print
// it).
func CheckServiceName(name string) error {
	if len(name) > policy.MaxServiceNameLen {
		return fmt.Errorf("%d bytes, at most %d", len(name), policy.MaxServiceNameLen)
	}
	if !utf8.ValidString(name) {
		return errors.New("not valid UTF-8")
	}
	if k := controlByte(name); k >= 0 {
		return fmt.Errorf("byte %d is the control character %#02x", k, name[k])
	}
	return nil
}

// CheckPrefix reports why p cannot be an address or source prefix: not
// valid, or IPv4-mapped IPv6 once masked (which no packet carries).
func CheckPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return errors.New("not a valid prefix")
	}
	if p.Masked().Addr().Is4In6() {
		return errors.New("IPv4-mapped IPv6 prefix; give the IPv4 prefix instead")
	}
	return nil
}

// prefixText formats a prefix for FieldError.Value; the zero Prefix,
// which has no text of its own, is "".
func prefixText(p netip.Prefix) string {
	if p == (netip.Prefix{}) {
		return ""
	}
	return p.String()
}

// CheckInterfaceName applies the kernel's dev_valid_name to an interface
// name.
func CheckInterfaceName(name string) error {
	if name == "" || len(name) > maxIfnameLen {
		return fmt.Errorf("name is %d bytes; interface names are 1 to %d bytes", len(name), maxIfnameLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%q is not an interface name", name)
	}
	for k := 0; k < len(name); k++ {
		switch c := name[k]; c {
		case 0, '/', ':', ' ', '\t', '\n', '\v', '\f', '\r', 0xa0:
			return fmt.Errorf("byte %d is %#02x; NUL, '/', ':' and whitespace are not allowed", k, c)
		}
	}
	return nil
}

// controlByte returns the index of the first ASCII control byte (NUL to
// 0x1f, and DEL) in s, or -1 if there is none.
func controlByte(s string) int {
	for k := 0; k < len(s); k++ {
		if c := s[k]; c < ' ' || c == 0x7f {
			return k
		}
	}
	return -1
}
