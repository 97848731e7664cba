package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/zfw-go/zfw/zfw"
)

// writeInterfaces prints `zfw -L -E`: each managed interface and its
// settings, one per line as the C zfw's list-diag does (1 on, 0 off),
// under the C zfw's names for them.
func writeInterfaces(w io.Writer, ifs []zfw.Interface) error {
	if len(ifs) == 0 {
		_, err := fmt.Fprintln(w, "no interface is managed")
		return err
	}
	rule := strings.Repeat("-", 34)
	for _, ifc := range ifs {
		s := ifc.InterfaceSettings
		name := ifc.Name
		if strings.IndexFunc(name, unicode.IsControl) >= 0 {
			name = strconv.Quote(name) // never a control byte on the terminal
		}
		fmt.Fprintf(w, "%s\n%s\n", name, rule)
		for _, f := range []struct {
			name string
			on   bool
		}{
			{"default deny", s.DefaultDeny},
			{"icmp echo", s.ICMPEcho},
			{"verbose", s.Verbose},
			{"ssh disable", s.DisableSSH},
			{"per interface", s.PerInterfaceRules},
			{"tun mode intercept", s.TunnelMode},
			{"vrrp enable", s.VRRP},
			{"eapol enable", s.EAPOL},
			{"pass non tuple", s.PassNonTuple},
			{"ipv6 enable", !s.DisableIPv6},
			{"outbound filter", s.OutboundFilter},
			{"masquerade", s.Masquerade},
			{"ddos filtering", s.DDoSProtection},
			{"ot filtering", s.OTFiltering},
		} {
			fmt.Fprintf(w, "%-24s:%d\n", f.name, bit(f.on))
		}
		fmt.Fprintln(w, rule)
	}
	return nil
}

func bit(on bool) int {
	if on {
		return 1
	}
	return 0
}
