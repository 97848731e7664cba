package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/testenv"
)

// IPTablesChain is the mangle chain InstallIPTables fills, jumped to
// from PREROUTING, as OpenZiti's tunneler fills NF-INTERCEPT.
const IPTablesChain = "ZFW-BENCH"

// iptablesMark and iptablesTable are the TPROXY mark and the routing
// table that delivers marked packets locally.
const (
	iptablesMark  = "0x1/0x1"
	iptablesTable = "100"
)

// IPTables is interception the way OpenZiti's Go tunneler does it
// without a diverter: iptables mangle TPROXY rules, one per intercept,
// in a namespace.
type IPTables struct {
	ns *testenv.Namespace
}

// InstallIPTables adds, inside ns only, one mangle TPROXY rule per
// intercept of ics, in order (so the last intercept's rule is the last
// of the chain): TCP to the intercept's first IPv4 address and first
// port range, to 127.0.0.1 port TProxyPort, marked 0x1/0x1; and the
// policy routing that delivers marked packets locally (`ip rule fwmark
// 0x1/0x1 lookup 100`, `ip route add local 0.0.0.0/0 dev lo table 100`).
// Rules go in with one iptables-restore, not one exec each.
func InstallIPTables(ctx context.Context, ns *testenv.Namespace, ics []intercept.Intercept) (*IPTables, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*mangle\n:%s - [0:0]\n-A PREROUTING -j %s\n", IPTablesChain, IPTablesChain)
	for _, ic := range ics {
		var addr string
		for _, p := range ic.Addresses {
			if p.Addr().Is4() {
				addr = p.String()
				break
			}
		}
		if addr == "" || len(ic.Ports) == 0 {
			continue
		}
		ports := fmt.Sprint(ic.Ports[0].Low)
		if ic.Ports[0].High != ic.Ports[0].Low {
			ports += fmt.Sprintf(":%d", ic.Ports[0].High)
		}
		fmt.Fprintf(&b, "-A %s -p tcp -d %s --dport %s -j TPROXY --on-ip 127.0.0.1 --on-port %d --tproxy-mark %s\n",
			IPTablesChain, addr, ports, ic.TProxyPort, iptablesMark)
	}
	b.WriteString("COMMIT\n")
	t := &IPTables{ns: ns}
	cmd := ns.Command(ctx, "iptables-restore", "--noflush")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, errors.Join(fmt.Errorf("iptables-restore in %s: %w: %s", ns, err, out), t.Remove(ctx))
	}
	for _, args := range [][]string{
		{"ip", "rule", "add", "fwmark", iptablesMark, "lookup", iptablesTable},
		{"ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", iptablesTable},
	} {
		if _, err := ns.Exec(ctx, args[0], args[1:]...); err != nil {
			return nil, errors.Join(err, t.Remove(ctx))
		}
	}
	return t, nil
}

// Remove deletes the chain, its jump and the policy routing. Parts that
// are already gone are not an error.
func (t *IPTables) Remove(ctx context.Context) error {
	var errs []error
	run := func(name string, args ...string) {
		if _, err := t.ns.Exec(ctx, name, args...); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := t.ns.Exec(ctx, "iptables", "-t", "mangle", "-n", "-L", IPTablesChain); err == nil {
		run("iptables", "-t", "mangle", "-D", "PREROUTING", "-j", IPTablesChain)
		run("iptables", "-t", "mangle", "-F", IPTablesChain)
		run("iptables", "-t", "mangle", "-X", IPTablesChain)
	}
	if out, err := t.ns.Exec(ctx, "ip", "rule", "show", "fwmark", iptablesMark); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		run("ip", "rule", "del", "fwmark", iptablesMark, "lookup", iptablesTable)
	}
	run("ip", "route", "flush", "table", iptablesTable)
	return errors.Join(errs...)
}
