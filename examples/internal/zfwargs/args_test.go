package zfwargs

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw/control"
)

// The argv OpenZiti's tproxy interceptor passes (ziti v1.6.x).
var (
	zitiInsert = strings.Fields("-I -c 100.64.0.2 -m 32 -p tcp -o 0.0.0.0 -n 0 -l 443 -h 443 -t 38123 -s 3TqdLrTn2A2F9vSi5JkQpx")
	zitiDelete = strings.Fields("-D -c 100.64.0.2 -m 32 -p tcp -o 0.0.0.0 -n 0 -l 443 -h 443")
)

func zitiRule() control.Rule {
	return control.Rule{
		Match: control.Match{
			Destination: netip.MustParsePrefix("100.64.0.2/32"),
			Source:      netip.MustParsePrefix("0.0.0.0/0"),
			Protocol:    intercept.TCP,
			Ports:       intercept.PortRange{Low: 443, High: 443},
		},
		TProxyPort: 38123, ServiceID: "3TqdLrTn2A2F9vSi5JkQpx",
	}
}

func TestParseAccepts(t *testing.T) {
	withIf := zitiRule()
	withIf.Interfaces = []string{"eth1"}
	two := zitiRule()
	two.Interfaces = []string{"eth1", "eth2"}
	noSource := zitiRule()
	noSource.Source = netip.Prefix{}
	pass := noSource
	pass.TProxyPort, pass.ServiceID = 0, ""
	deny := pass
	deny.Deny = true
	udp6 := control.Rule{Match: control.Match{
		Destination: netip.MustParsePrefix("fd00::/64"), Protocol: intercept.UDP,
		Ports: intercept.PortRange{Low: 1, High: 65535},
	}, TProxyPort: 5000}
	router6 := control.Rule{Match: control.Match{
		Destination: netip.MustParsePrefix("fd00::1/128"), Source: netip.MustParsePrefix("::/0"), Protocol: intercept.TCP,
		Ports: intercept.PortRange{Low: 80, High: 80},
	}, TProxyPort: 38123, ServiceID: "3TqdLrTn2A2F9vSi5JkQpx"}
	any4 := zitiRule()
	masked := noSource
	masked.Destination = netip.MustParsePrefix("100.64.0.0/24")
	masked.TProxyPort, masked.ServiceID = 0, ""
	egress := pass
	egress.Egress = true
	egressDeny := deny
	egressDeny.Egress = true

	tests := []struct {
		name string
		args string
		want Command
	}{
		{"ziti version probe", "-V", Command{Op: OpVersion}},
		{"long version", "--version", Command{Op: OpVersion}},
		{"version wins", "-I -V", Command{Op: OpVersion}},
		{"help", "--help", Command{Op: OpHelp}},
		{"ziti insert", strings.Join(zitiInsert, " "), Command{Op: OpInsert, Rule: zitiRule()}},
		{"ziti insert with interface", strings.Join(zitiInsert, " ") + " -N eth1", Command{Op: OpInsert, Rule: withIf}},
		{"interfaces repeat", strings.Join(zitiInsert, " ") + " -N eth1 --interface eth2", Command{Op: OpInsert, Rule: two}},
		{"ziti delete", strings.Join(zitiDelete, " "), Command{Op: OpDelete, Rule: control.Rule{Match: zitiRule().Match}}},
		{"delete ignores -t and -s", strings.Join(zitiDelete, " ") + " -t 1 -s x", Command{Op: OpDelete, Rule: control.Rule{Match: zitiRule().Match}}},
		{"attached values", "-I -c100.64.0.2 -m32 -ptcp -l443 -h443 -t38123 -s3TqdLrTn2A2F9vSi5JkQpx", Command{Op: OpInsert, Rule: noSource}},
		{"long forms", "--insert --dcidr-block 100.64.0.2 --dprefix-len=32 --protocol tcp --low-port 443 --high-port=443 --tproxy-port 38123 --service-id 3TqdLrTn2A2F9vSi5JkQpx", Command{Op: OpInsert, Rule: noSource}},
		{"long prefixes", "--ins --dcidr 100.64.0.2 --dpre 32 --proto tcp --low 443 --high 443 --tproxy 38123 --serv 3TqdLrTn2A2F9vSi5JkQpx", Command{Op: OpInsert, Rule: noSource}},
		{"any order", "-p tcp -l 443 -h 443 -c 100.64.0.2 -m 32 -t 38123 -s 3TqdLrTn2A2F9vSi5JkQpx -I", Command{Op: OpInsert, Rule: noSource}},
		{"bundled flags", "-Ir -c 100.64.0.2 -m 32 -p tcp -l 443 -h 443 -t 0", Command{Op: OpInsert, Rule: pass}},
		{"bundled value", "-Irc 100.64.0.2 -m 32 -p TCP -l 443 -h 443 -t 0", Command{Op: OpInsert, Rule: pass}},
		{"pass-through", "-I -c 100.64.0.2 -m 32 -p tcp -l 443 -h 443 -t 0", Command{Op: OpInsert, Rule: pass}},
		{"deny", "-I -d -c 100.64.0.2 -m 32 -p tcp -l 443 -h 443", Command{Op: OpInsert, Rule: deny}},
		{"ipv6", "-I -c fd00:: -m 64 -p udp -l 1 -h 65535 -t 5000", Command{Op: OpInsert, Rule: udp6}},
		// OpenZiti's router: any source is 0.0.0.0/0 whatever the family.
		{"router's ipv6 insert", "-I -c fd00::1 -m 128 -p tcp -o 0.0.0.0 -n 0 -l 80 -h 80 -t 38123 -s 3TqdLrTn2A2F9vSi5JkQpx", Command{Op: OpInsert, Rule: router6}},
		{"router's ipv6 delete", "-D -c fd00::1 -m 128 -p tcp -o 0.0.0.0 -n 0 -l 80 -h 80", Command{Op: OpDelete, Rule: control.Rule{Match: router6.Match}}},
		{"any source written in ipv6", "-I -c 100.64.0.2 -m 32 -p tcp -o :: -n 0 -l 443 -h 443 -t 38123 -s 3TqdLrTn2A2F9vSi5JkQpx", Command{Op: OpInsert, Rule: any4}},
		{"host bits masked", "-I -c 100.64.0.9 -m 24 -p tcp -l 443 -h 443 -t 0", Command{Op: OpInsert, Rule: masked}},
		{"list", "-L", Command{Op: OpList}},
		{"list intercepts", "-L -i", Command{Op: OpList, OnlyIntercepts: true}},
		{"list passthrough", "--list --passthrough", Command{Op: OpList, OnlyPassthrough: true}},
		{"list interfaces", "-L -E", Command{Op: OpList, Interfaces: true}},
		{"list sessions", "-L -G", Command{Op: OpList, Sessions: true}},
		{"uninstall", "-Q", Command{Op: OpUninstall}},
		{"user rules", "-A", Command{Op: OpUserRules}},
		{"user rules, long", "--add-user-rules", Command{Op: OpUserRules}},
		{"list with the C zfw's ipv6 table option", "-L -6 all", Command{Op: OpList}},
		{"uninstall, long, elsewhere", "--disable-ebpf --pin-path /sys/fs/bpf/r1", Command{Op: OpUninstall, PinPath: "/sys/fs/bpf/r1"}},
		{"icmp echo on", "-e eth0", Command{Op: OpSetInterface, Interface: "eth0", Setting: "icmp-echo"}},
		{"verbose off", "-v eth0 -d", Command{Op: OpSetInterface, Interface: "eth0", Setting: "verbose", Off: true}},
		{"every interface", "--per-interface-rules all", Command{Op: OpSetInterface, Interface: "all", Setting: "per-interface-rules"}},
		{"router tunnel mode", "-T ens33", Command{Op: OpSetInterface, Interface: "ens33", Setting: "set-tun-mode"}},
		{"ipv6 off", "-6 eth1 -d --pin-path /sys/fs/bpf/r1", Command{Op: OpSetInterface, Interface: "eth1", Setting: "ipv6-enable", Off: true, PinPath: "/sys/fs/bpf/r1"}},
		{"list interfaces, long", "--list --list-diag", Command{Op: OpList, Interfaces: true}},
		{"flush", "-F", Command{Op: OpFlush}},
		{"flush with route", "-F -r", Command{Op: OpFlush}},
		{"locations", "-L --pin-path /sys/fs/bpf/r1 --control-socket=/tmp/s", Command{Op: OpList, PinPath: "/sys/fs/bpf/r1", Socket: "/tmp/s"}},
		{"end of options", "-L --", Command{Op: OpList}},
		{"egress pass", "-I -z egress -c 100.64.0.2 -m 32 -p tcp -l 443 -h 443 -t 0", Command{Op: OpInsert, Rule: egress, Direction: control.Egress}},
		{"egress deny", "-I --direction=egress -d -c 100.64.0.2 -m 32 -p tcp -l 443 -h 443", Command{Op: OpInsert, Rule: egressDeny, Direction: control.Egress}},
		{"egress delete", "-D -z egress -c 100.64.0.2 -m 32 -p tcp -l 443 -h 443", Command{Op: OpDelete, Rule: control.Rule{Match: egress.Match}, Direction: control.Egress}},
		{"ingress insert", "-I -z ingress -c 100.64.0.2 -m 32 -p tcp -l 443 -h 443 -t 0", Command{Op: OpInsert, Rule: pass, Direction: control.Ingress}},
		{"list egress", "-L -z egress", Command{Op: OpList, Direction: control.Egress}},
		{"flush ingress with routes", "-F -z ingress -r", Command{Op: OpFlush, Direction: control.Ingress}},
		{"flush egress", "-F -z egress", Command{Op: OpFlush, Direction: control.Egress}},
		{"list the allow-list", "-L -Y", Command{Op: OpList, List: control.ListDDoSSources}},
		{"list guarded ports", "--list --list-ddos-dports", Command{Op: OpList, List: control.ListDDoSPorts}},
		{"list dnp3 codes", "-L -C", Command{Op: OpList, List: control.ListDNP3Codes}},
		{"empty the allow-list", "-F -Y", Command{Op: OpFlush, List: control.ListDDoSSources}},
		{"allow a source", "-y 10.1.2.3", Command{Op: OpSetMember, List: control.ListDDoSSources, Member: "10.1.2.3"}},
		{"guard a port, elsewhere", "--ddos-dport-add=443 --pin-path /sys/fs/bpf/r1", Command{Op: OpSetMember, List: control.ListDDoSPorts, Member: "443", PinPath: "/sys/fs/bpf/r1"}},
		{"monitor", "-M all", Command{Op: OpMonitor, Interface: "all"}},
		{"monitor to a file", "--monitor eth0 -W /var/log/zfw.log", Command{Op: OpMonitor, Interface: "eth0", LogFile: "/var/log/zfw.log"}},
		{"bind address", "-B 10.5.0.0 -m 24", Command{Op: OpSetMember, List: control.ListBindSources, Member: "10.5.0.0/24"}},
		{"bind address, host bits set", "-B 10.5.0.7 -m 24", Command{Op: OpSetMember, List: control.ListBindSources, Member: "10.5.0.0/24"}},
		{"bind address delete", "--bind-saddr-delete fd00::5 -m 128", Command{Op: OpSetMember, List: control.ListBindSources, Member: "fd00::5/128", Off: true}},
		{"bind address elsewhere", "-B 10.5.0.0 -m 24 --pin-path /sys/fs/bpf/x", Command{Op: OpSetMember, List: control.ListBindSources, Member: "10.5.0.0/24", PinPath: "/sys/fs/bpf/x"}},
		{"bind flush", "-F -j", Command{Op: OpFlush, List: control.ListBindSources}},
		{"block a dnp3 code", "-g 5 -d", Command{Op: OpSetMember, List: control.ListDNP3Codes, Member: "5", Off: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.Fields(tc.args))
			if err != nil {
				t.Fatalf("Parse(%s): %v", tc.args, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%s) =\n%+v\nwant\n%+v", tc.args, got, tc.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	base := "-I -c 10.0.0.0 -m 24 -p tcp -l 80 -h 90 -t 4000"
	tests := []struct {
		name, args, want string
	}{
		{"nothing", "", "no operation"},
		{"two operations", "-I -D", "-I (--insert) and -D (--delete) cannot be combined"},
		{"missing -m", "-I -c 10.0.0.0 -p tcp -l 80 -h 90 -t 4000", "-c (--dcidr-block) needs -m (--dprefix-len)"},
		{"missing -c", "-I -m 24 -p tcp -l 80 -h 90 -t 4000", "-m (--dprefix-len) needs -c (--dcidr-block)"},
		{"missing -n", base + " -o 10.1.0.0", "-o (--ocidr-block) needs -n (--oprefix-len)"},
		{"missing -o", base + " -n 16", "-n (--oprefix-len) needs -o (--ocidr-block)"},
		{"missing destination", "-I -p tcp -l 80 -h 90 -t 4000", "-I (--insert) needs -c (--dcidr-block)"},
		{"missing protocol", "-I -c 10.0.0.0 -m 24 -l 80 -h 90 -t 4000", "needs -p (--protocol)"},
		{"missing low", "-D -c 10.0.0.0 -m 24 -p tcp -h 90", "-D (--delete) needs -l (--low-port)"},
		{"missing high", "-D -c 10.0.0.0 -m 24 -p tcp -l 90", "needs -h (--high-port)"},
		{"missing tproxy port", "-I -c 10.0.0.0 -m 24 -p tcp -l 80 -h 90", "needs -t (--tproxy-port)"},
		{"bad address", "-I -c 10.0.0.300 -m 24 -p tcp -l 80 -h 90 -t 4000", `bad address "10.0.0.300" for -c (--dcidr-block)`},
		{"bad prefix", "-I -c 10.0.0.0 -m 33 -p tcp -l 80 -h 90 -t 4000", `bad prefix length "33" for -m (--dprefix-len): 0 to 32`},
		{"bad v6 prefix", "-I -c fd00:: -m 129 -p tcp -l 80 -h 90 -t 4000", "0 to 128"},
		{"negative prefix", "-I -c 10.0.0.0 -m -1 -p tcp -l 80 -h 90 -t 4000", "bad prefix length"},
		{"bad source prefix", base + " -o 10.1.0.0 -n x", `bad prefix length "x" for -n (--oprefix-len)`},
		{"mixed families", base + " -o fd00:: -n 8", "different address families"},
		{"mixed families, v4 source", "-I -c fd00:: -m 64 -p tcp -l 80 -h 90 -t 4000 -o 10.0.0.0 -n 8", "different address families"},
		{"unknown protocol", "-I -c 10.0.0.0 -m 24 -p icmp -l 80 -h 90 -t 4000", `unknown protocol "icmp" for -p (--protocol): tcp or udp`},
		{"low above high", "-I -c 10.0.0.0 -m 24 -p tcp -l 91 -h 90 -t 4000", "low port 91 is above high port 90"},
		{"port zero", "-I -c 10.0.0.0 -m 24 -p tcp -l 0 -h 90 -t 4000", `bad port "0" for -l (--low-port): 1 to 65535`},
		{"port too big", "-I -c 10.0.0.0 -m 24 -p tcp -l 80 -h 65536 -t 4000", `bad port "65536" for -h (--high-port)`},
		{"bad tproxy port", "-I -c 10.0.0.0 -m 24 -p tcp -l 80 -h 90 -t x", `bad port "x" for -t (--tproxy-port): 0 to 65535`},
		{"deny with a listener", base + " -d", "takes no tproxy port"},
		{"empty service id", base + " --service-id=", "-s (--service-id) is empty"},
		{"missing value", "-I -c", "option -c (--dcidr-block) needs a value"},
		{"missing long value", "-L --pin-path", "option --pin-path needs a value"},
		{"flag with value", "--list=yes", "option --list takes no value"},
		{"unknown short", "-L -K", "unknown option -K"},
		{"unknown long", "--lists", "unknown option --lists"},
		{"ambiguous long", "--l", "ambiguous"},
		{"stray argument", "-L eth0", `unexpected argument "eth0"`},
		{"argument after --", "-L -- x", `unexpected argument "x"`},
		{"rule option with list", "-L -c 10.0.0.0 -m 8", "option -c (--dcidr-block) does not go with -L (--list)"},
		{"interface with flush", "-F -N eth0", "does not go with -F"},
		{"filter with insert", base + " -i", "-i (--intercepts) does not go with -I"},
		{"deny with delete", "-D -d -c 10.0.0.0 -m 24 -p tcp -l 80 -h 90", "-d (--disable) does not go with -D"},
		{"both list filters", "-L -i -f", "cannot be combined"},
		{"interfaces and a rule filter", "-L -E -i", "-E (--list-diag) lists interfaces"},
		{"two settings", "-e eth0 -v eth0", "give one interface setting at a time"},
		{"uninstall and list", "-Q -L", "cannot be combined"},
		{"list -6 of one interface", "-L -6 eth0", `-L -6 takes all (got "eth0")`},
		{"uninstall with an option", "-Q -r", "option -r (--route) does not go with -Q (--disable-ebpf)"},
		{"a setting with a rule", "-I -c 10.0.0.0 -m 24 -p tcp -l 80 -h 90 -t 4000 -e eth0", "does not go with -e (--icmp-echo)"},
		{"a bad interface name", "-e eth0/1", `interface "eth0/1"`},
		{"interfaces without -L", "-F -E", "option -E (--list-diag) does not go with -F (--flush)"},
		{"bind address without length", "-B 10.5.0.0", "-B (--bind-saddr-add) needs -m (--dprefix-len)"},
		{"bind address with a rule", "-B 10.5.0.0 -m 24 -p tcp", "option -p (--protocol) does not go with -B"},
		{"bind flush with a list", "-F -j -Y", "option -Y (--list-ddos-saddr) does not go with -F -j"},
		{"bind with list", "-L -j", "option -j (--bind-flush) does not go with -L"},
		{"sessions and interfaces", "-L -G -E", "option -E (--list-diag) does not go with -L -G"},
		{"sessions to flush", "-F -G", "option -G (--list-gc-sessions) does not go with -F"},
		{"two lists", "-L -Y -U", "give one list at a time"},
		{"a list with a rule filter", "-L -Y -i", "option -i (--intercepts) does not go with -L (--list) -Y (--list-ddos-saddr)"},
		{"a list with a direction", "-F -C -z egress", "does not go with -F (--flush) -C"},
		{"a list alone", "-Y", "no operation"},
		{"a list with insert", base + " -U", "-U (--list-ddos-dports) does not go with -I"},
		{"a member and a list", "-y 10.0.0.1 -L", "option -L (--list) does not go with -y (--ddos-saddr-add)"},
		{"a member and a rule", "-u 443 -c 10.0.0.0 -m 8", "does not go with -u (--ddos-dport-add)"},
		{"monitor with a rule", "-M eth0 -L", "option -L (--list) does not go with -M (--monitor)"},
		{"log without monitor", "-L -W /tmp/x", "-W (--write-log) goes with -M (--monitor)"},
		{"monitor of a bad name", "-M eth0/1", `interface "eth0/1"`},
		{"egress to a listener", base + " -z egress", "-z egress: an egress rule passes (-t 0) or drops (-d)"},
		{"bad direction", "-L -z inwards", `bad direction "inwards" for -z (--direction): ingress or egress`},
		{"direction of interfaces", "-L -E -z egress", "-E (--list-diag) lists interfaces; -z limits a listing of rules"},
		{"direction with a setting", "-e eth0 -z egress", "does not go with -e (--icmp-echo)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.Fields(tc.args))
			if err == nil {
				t.Fatalf("Parse(%s) = %+v, want an error", tc.args, got)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%s): %q, want it to say %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestParseAttachment(t *testing.T) {
	tests := []struct {
		args string
		want Command
	}{
		{"-X eth0 -z ingress", Command{Op: OpAttach, Interface: "eth0", Direction: control.Ingress}},
		{"-X eth0 -O /opt/openziti/bin/zfw_tc_ingress.o -z ingress", Command{Op: OpAttach, Interface: "eth0", Direction: control.Ingress, Note: "-O: " + objectReason}},
		{"--set-tc-filter all --direction egress", Command{Op: OpAttach, Interface: "all", Direction: control.Egress, Note: "-X -z egress: the egress program is attached with the ingress one"}},
		{"-X eth0 -z ingress -d", Command{Op: OpAttach, Interface: "eth0", Direction: control.Ingress, Off: true}},
		{"-X eth0 -z egress -d", Command{Op: OpAttach, Interface: "eth0", Direction: control.Egress, Off: true}},
		{"-H ens33", Command{Op: OpAttach, Interface: "ens33"}},
		{"-Z ziti0", Command{Op: OpTunnel, Interface: "ziti0"}},
		{"-Z ziti0 -d --pin-path /sys/fs/bpf/t", Command{Op: OpTunnel, Interface: "ziti0", Off: true, PinPath: "/sys/fs/bpf/t"}},
	}
	for _, tc := range tests {
		got, err := Parse(strings.Fields(tc.args))
		if err != nil {
			t.Errorf("Parse(%s): %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%s) =\n%+v\nwant\n%+v", tc.args, got, tc.want)
		}
	}
	for _, tc := range []struct{ args, want string }{
		{"-X eth0", "-X (--set-tc-filter) needs -z (--direction) (ingress or egress)"},
		{"-X eth0 -z sideways", `bad direction "sideways"`},
		{"-X eth0 -z ingress -H eth0", "cannot be combined"},
		{"-H eth0 -d", "option -d (--disable) does not go with -H (--init-tc)"},
		{"-Z all", "takes the one interface that is the Ziti tun, not all"},
		{"-X eth0 -z ingress -L", "option -L (--list) does not go with -X"},
		{"-L -O x", "-O (--object-file) goes with -X, -H or -Z"},
		{"-A -p tcp", "option -p (--protocol) does not go with -A"},
	} {
		if _, err := Parse(strings.Fields(tc.args)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}
