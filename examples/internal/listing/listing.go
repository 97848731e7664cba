// Package listing prints what the dataplane holds in the layouts of the
// C zfw's listings, for the zfw command and the demo.
package listing

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/zfw-go/zfw/zfw"
)

// Rules prints rules in the column layout of `zfw -L`: type, direction,
// service id, protocol, origin, destination, mapping, interfaces and hits,
// followed by the counts against the map limits.
func Rules(w io.Writer, rules []zfw.RuleInfo, u zfw.Usage) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "type\tdirection\tservice id\tproto\torigin\tdestination\tmapping\tinterfaces\thits")
	for _, r := range rules {
		typ := "accept"
		if r.Action == zfw.Deny {
			typ = "deny"
		}
		sid := Printable(r.ServiceID)
		if sid == "" {
			sid = "-"
		}
		ifs := "all"
		if len(r.Interfaces) > 0 {
			ifs = Printable(strings.Join(r.Interfaces, ","))
		}
		dir := "ingress"
		if r.Egress {
			dir = "egress"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\tdpts=%d:%d %s\t%s\t%d\n",
			typ, dir, sid, r.Protocol, prefixOrAny(r.Source), r.Destination,
			r.Ports.Low, r.Ports.High, Mapping(r), ifs, r.Hits)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "Rule Count: %d / %d\nprefix_tuple_count: %d / %d (IPv4), %d / %d (IPv6)\n",
		u.Rules, u.MaxRules, u.Prefixes4, u.MaxPrefixes, u.Prefixes6, u.MaxPrefixes)
	return err
}

// Mapping describes what happens to a rule's packets, in the words of
// zfw -L's mapping column.
func Mapping(r zfw.RuleInfo) string {
	switch r.Action {
	case zfw.TProxy:
		lo := "127.0.0.1"
		if r.Destination.Addr().Is6() {
			lo = "[::1]"
		}
		return fmt.Sprintf("TPROXY redirect %s:%d", lo, r.TProxyPort)
	case zfw.Pass:
		if r.Egress {
			return "ALLOW out to " + r.Destination.String()
		}
		return "PASSTHRU to " + r.Destination.String()
	}
	return "DROP"
}

// Printable returns s as it is when it is valid UTF-8 without control
// characters or blanks that would break a column, else quoted with Go's
// escapes: what a dataplane pinned by another version holds must not
// reach an operator's terminal raw.
func Printable(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// prefixOrAny is "any" for the zero prefix (a rule for every source).
func prefixOrAny(p netip.Prefix) string {
	if !p.IsValid() {
		return "any"
	}
	return p.String()
}
