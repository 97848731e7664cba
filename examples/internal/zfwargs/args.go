// Package zfwargs parses command lines of the zfw command (examples/zfw),
// flag for flag like the C zfw's rule options. It is shared by the
// command itself and by examples/edge-router, whose user rules file may
// hold -I command lines.
package zfwargs

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw/control"
)

// Operation is what one zfw run does.
type Operation int

// Operations.
const (
	OpNone    Operation = iota
	OpInsert            // -I
	OpDelete            // -D
	OpList              // -L
	OpFlush             // -F
	OpVersion           // -V
	OpHelp              // --help
	// OpSetInterface turns one interface setting on or off (-e, -v, -x,
	// -P, -T, -R, -w, -a, -b, -k, -6, -q, -S, with -d for off).
	OpSetInterface
	// OpUninstall removes a dataplane nobody owns, or turns it off
	// through its owner (-Q).
	OpUninstall
	// OpUserRules runs the user rules script (-A).
	OpUserRules
	// OpSetMember adds to one of the dataplane's lists or, with -d,
	// removes from it (-y, -u, -g; -B adds a local source, -J removes
	// one).
	OpSetMember
	// OpAttach attaches Interface (-X -z ingress, -H), or detaches it
	// when Off (-X -z ingress -d); with Direction egress and Off it turns
	// outbound filtering and masquerade off there (-X -z egress -d).
	// Notes say what was accepted without effect.
	OpAttach
	// OpTunnel makes Interface the Ziti tun (-Z), or turns tunnel mode
	// off (Off).
	OpTunnel
	// OpMonitor prints events as they happen (-M), to LogFile (-W) if
	// set.
	OpMonitor
)

// UserRulesScript is where the C zfw's -A finds the user's rules: a
// script of zfw command lines.
const UserRulesScript = "/opt/openziti/bin/user/user_rules.sh"

// objectReason is why -O has nothing to do.
const objectReason = "the programs are built into the dataplane's owner"

// Command is a parsed command line.
type Command struct {
	Op Operation
	// Rule is the rule of -I, and its Match the rule of -D.
	Rule control.Rule
	// OnlyIntercepts and OnlyPassthrough filter -L (-i, -f).
	OnlyIntercepts, OnlyPassthrough bool
	// Interfaces makes -L list the managed interfaces and their
	// settings instead of the rules (-E); Sessions the tracked sessions
	// (-G).
	Interfaces, Sessions bool
	// Interface, Setting (a control.Settings name) and Off are
	// OpSetInterface's; Interface may be control.AllInterfaces.
	// Note is what OpAttach accepted without effect. LogFile is OpMonitor's -W.
	Interface, Setting, Note, LogFile string
	Off                               bool
	// List is the dataplane list (a control.List* name) that -L and -F
	// show or empty (-Y, -U, -C) and OpSetMember changes; Member is
	// OpSetMember's value, removed when Off.
	List, Member string
	// Direction (-z) puts -I and -D in the egress rules, and limits -L
	// and -F to one direction's rules.
	Direction control.Direction
	// PinPath and Socket override where the dataplane is (--pin-path,
	// --control-socket).
	PinPath, Socket string
}

// option is one command-line option, as the C zfw (argp) spells it.
type option struct {
	short rune   // 0: long form only
	long  string // "" : short form only
	arg   string // the value's name; "" for a flag
	help  string
	// setting: an interface setting, named by long (control.Settings).
	setting bool
	// list: the dataplane list (control.List*) this option lists with -L
	// or empties with -F, or, when it takes a value, adds the value to.
	list string
}

var options = []option{
	{short: 'I', long: "insert", help: "insert a rule (needs -c -m -p -l -h -t)"},
	{short: 'D', long: "delete", help: "delete the rule with this match (needs -c -m -p -l -h)"},
	{short: 'L', long: "list", help: "list the rules and the map usage"},
	{short: 'F', long: "flush", help: "remove every rule (intercepts of the dataplane's owner stay)"},
	{short: 'V', long: "version", help: "print the version"},
	{short: '?', long: "help", help: "print this help"},
	{short: 'c', long: "dcidr-block", arg: "ADDR", help: "destination address (IPv4 or IPv6)"},
	{short: 'm', long: "dprefix-len", arg: "LEN", help: "destination prefix length"},
	{short: 'o', long: "ocidr-block", arg: "ADDR", help: "source address (default any)"},
	{short: 'n', long: "oprefix-len", arg: "LEN", help: "source prefix length"},
	{short: 'p', long: "protocol", arg: "tcp|udp", help: "protocol"},
	{short: 'l', long: "low-port", arg: "PORT", help: "low destination port"},
	{short: 'h', long: "high-port", arg: "PORT", help: "high destination port"},
	{short: 't', long: "tproxy-port", arg: "PORT", help: "listener port on the loopback address; 0 passes to the host"},
	{short: 's', long: "service-id", arg: "ID", help: "service the rule intercepts"},
	{short: 'N', long: "interface", arg: "IFNAME", help: "apply on this interface only (repeatable)"},
	{short: 'd', long: "disable", help: "with -I: a rule that drops; with an interface setting: turn it off"},
	{short: 'r', long: "route", help: "accepted and ignored: no route is needed per prefix"},
	{short: 'i', long: "intercepts", help: "with -L: only TPROXY rules"},
	{short: 'f', long: "passthrough", help: "with -L: only pass-through rules"},
	{short: 'Q', long: "disable-ebpf", help: "remove a dataplane nobody owns: detach it everywhere, remove its routing and pins; with an owner running, detach every interface and flush the -I rules through it"},
	{short: 'z', long: "direction", arg: "ingress|egress", help: "with -I/-D: an egress rule (-t 0 or -d only); with -L/-F: only that direction's rules"},
	{short: 'G', long: "list-gc-sessions", help: "with -L: the sessions the dataplane tracks (expired ones are collected by its owner)"},
	{short: 'E', long: "list-diag", help: "with -L: the managed interfaces and their settings (exit 0 while a dataplane runs)"},
	{long: "pin-path", arg: "DIR", help: "pin folder of the dataplane (default $ZFW_PIN_PATH or /sys/fs/bpf/zfw)"},
	{long: "control-socket", arg: "PATH", help: "control socket of its owner (default $ZFW_CONTROL_SOCKET or /run/zfw/<pin folder name>.sock)"},

	// Attachment, through the dataplane's owner.
	{short: 'X', long: "set-tc-filter", arg: "IFNAME", help: "with -z ingress: attach the dataplane to the interface (or all), both directions; -d detaches it; with -z egress -d: outbound filtering and masquerade off there"},
	{short: 'H', long: "init-tc", arg: "IFNAME", help: "attach the dataplane to the interface (or all), both directions"},
	{short: 'Z', long: "init-xdp", arg: "IFNAME", help: "make the interface the Ziti tun of tunnel mode (XDP program attached); -d turns tunnel mode off"},
	{short: 'O', long: "object-file", arg: "FILE", help: "with -X/-H/-Z: accepted, nothing to do: " + objectReason},

	// The monitor.
	{short: 'M', long: "monitor", arg: "IFNAME", help: "print the dataplane's events of the interface (or all) as they happen, until interrupted; interfaces with -v send one per drop"},
	{short: 'W', long: "write-log", arg: "FILE", help: "with -M: append the events to FILE instead"},

	// The C zfw's bind addresses: ziti-edge-tunnel adds them to source
	// hosted connections from client addresses.
	{short: 'B', long: "bind-saddr-add", arg: "ADDR", help: "with -m: make the prefix local (a route on lo), so that a tunneler can source hosted connections from its clients' addresses; counted, through the owner"},
	{short: 'J', long: "bind-saddr-delete", arg: "ADDR", help: "with -m: take back one -B of the prefix"},
	{short: 'j', long: "bind-flush", help: "with -F: take back every -B"},

	// The dataplane's lists.
	{short: 'Y', long: "list-ddos-saddr", list: control.ListDDoSSources, help: "with -L: the DDoS allow-list and the sources banned now; with -F: empty the allow-list"},
	{short: 'U', long: "list-ddos-dports", list: control.ListDDoSPorts, help: "with -L: the ports DDoS protection guards; with -F: guard none"},
	{short: 'C', long: "list-dnp3-fcodes", list: control.ListDNP3Codes, help: "with -L: the DNP3 function codes allowed; with -F: allow none"},
	{short: 'y', long: "ddos-saddr-add", arg: "ADDR", list: control.ListDDoSSources, help: "add a source to the DDoS allow-list (-d removes it): once it lists any, only listed sources open connections to guarded ports"},
	{short: 'u', long: "ddos-dport-add", arg: "PORT", list: control.ListDDoSPorts, help: "guard a port with DDoS protection (-d stops)"},
	{short: 'g', long: "dnp3-fcode-add", arg: "CODE", list: control.ListDNP3Codes, help: "allow a DNP3 function code (-d blocks it)"},

	// Interface settings, changed live through the dataplane's owner.
	{short: '6', long: "ipv6-enable", arg: "IFNAME", setting: true, help: "IPv6 on the interface (IFNAME or all; -d drops all IPv6 there)"},
	{short: 'e', long: "icmp-echo", arg: "IFNAME", setting: true, help: "admit ICMP echo on a default-deny interface (IFNAME or all; -d turns it off)"},
	{short: 'v', long: "verbose", arg: "IFNAME", setting: true, help: "an event for every drop (IFNAME or all; -d turns it off)"},
	{short: 'x', long: "disable-ssh", arg: "IFNAME", setting: true, help: "no default SSH to the interface's own addresses (IFNAME or all; -d turns it off)"},
	{short: 'P', long: "per-interface-rules", arg: "IFNAME", setting: true, help: "only rules that name the interface apply there (IFNAME or all; -d turns it off)"},
	{short: 'T', long: "set-tun-mode", arg: "IFNAME", setting: true, help: "intercepted flows go into the Ziti tun (IFNAME or all; -d turns it off)"},
	{short: 'R', long: "vrrp-enable", arg: "IFNAME", setting: true, help: "admit VRRP (IFNAME or all; -d turns it off)"},
	{short: 'w', long: "enable-eapol", arg: "IFNAME", setting: true, help: "admit EAPOL (IFNAME or all; -d turns it off)"},
	{short: 'a', long: "ddos-filtering", arg: "IFNAME", setting: true, help: "SYN-flood protection (IFNAME or all; -d turns it off)"},
	{short: 'b', long: "outbound-filtering", arg: "IFNAME", setting: true, help: "new outbound flows need an egress rule (IFNAME or all; -d turns it off)"},
	{short: 'k', long: "masquerade", arg: "IFNAME", setting: true, help: "source-NAT what leaves to the interface's address (IFNAME or all; -d turns it off)"},
	{short: 'q', long: "pass-non-tuple", arg: "IFNAME", setting: true, help: "admit protocols other than TCP and UDP (IFNAME or all; -d turns it off)"},
	{short: 'S', long: "ot-filtering", arg: "IFNAME", setting: true, help: "DNP3 and Modbus/TCP filtering (IFNAME or all; -d turns it off)"},

	// The C zfw's other options: attachment, monitoring and the like
	// belong to the process that owns the dataplane here.

	{short: 'A', long: "add-user-rules", help: "run the user rules script (" + UserRulesScript + ", or $ZFW_USER_RULES), as the C zfw does; none there is no error"},
}

// name is how messages refer to an option: "-c (--dcidr-block)".
func (o *option) name() string {
	switch {
	case o.short == 0:
		return "--" + o.long
	case o.long == "":
		return "-" + string(o.short)
	}
	return fmt.Sprintf("-%c (--%s)", o.short, o.long)
}

func lookupShort(c rune) *option {
	for i := range options {
		if options[i].short == c {
			return &options[i]
		}
	}
	return nil
}

// lookupLong finds a long option by its name or, as getopt_long does,
// by an unambiguous prefix of it.
func lookupLong(name string) (*option, error) {
	var found *option
	for i := range options {
		o := &options[i]
		if o.long == "" {
			continue
		}
		if o.long == name {
			return o, nil
		}
		if strings.HasPrefix(o.long, name) {
			if found != nil {
				return nil, fmt.Errorf("option --%s is ambiguous (--%s, --%s)", name, found.long, o.long)
			}
			found = o
		}
	}
	if found == nil {
		return nil, fmt.Errorf("unknown option --%s", name)
	}
	return found, nil
}

// setting is one option given on the command line, with its value.
type setting struct {
	opt   *option
	value string
}

// scan splits args into options and values the way getopt_long does:
// "-c VALUE", "-cVALUE", bundled flags ("-Ir"), "--long VALUE",
// "--long=VALUE", and "--" ending the options.
func scan(args []string) ([]setting, error) {
	var out []setting
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return nil, fmt.Errorf("unexpected argument %q", args[i+1])
			}
			return out, nil
		case strings.HasPrefix(a, "--"):
			name, value, hasValue := strings.Cut(a[2:], "=")
			o, err := lookupLong(name)
			if err != nil {
				return nil, err
			}
			switch {
			case o.arg == "" && hasValue:
				return nil, fmt.Errorf("option --%s takes no value", o.long)
			case o.arg != "" && !hasValue:
				if i+1 >= len(args) {
					return nil, fmt.Errorf("option %s needs a value (%s)", o.name(), o.arg)
				}
				i++
				value = args[i]
			}
			out = append(out, setting{o, value})
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags := []rune(a[1:])
			for j := 0; j < len(flags); j++ {
				o := lookupShort(flags[j])
				if o == nil {
					return nil, fmt.Errorf("unknown option -%c", flags[j])
				}
				if o.arg == "" {
					out = append(out, setting{opt: o})
					continue
				}
				value := string(flags[j+1:])
				if value == "" {
					if i+1 >= len(args) {
						return nil, fmt.Errorf("option %s needs a value (%s)", o.name(), o.arg)
					}
					i++
					value = args[i]
				}
				out = append(out, setting{o, value})
				break
			}
		default:
			return nil, fmt.Errorf("unexpected argument %q", a)
		}
	}
	return out, nil
}

// Parse turns the command line (without the program name) into a
// Command, checking it as a whole.
func Parse(args []string) (Command, error) {
	settings, err := scan(args)
	if err != nil {
		return Command{}, err
	}
	var (
		cmd       Command
		ifSetting *option // the interface setting given, if any
		listOpt   *option // the list option given, if any
		ops       []*option
		values    = make(map[rune]string) // last value of each short option
		given     = make(map[rune]*option)
	)
	for _, s := range settings {
		o := s.opt
		switch o.long {
		case "pin-path":
			cmd.PinPath = s.value
			continue
		case "control-socket":
			cmd.Socket = s.value
			continue
		}
		if o.list != "" {
			if listOpt != nil && listOpt != o {
				return Command{}, fmt.Errorf("%s and %s: give one list at a time", listOpt.name(), o.name())
			}
			listOpt = o
		}
		if o.setting {
			if ifSetting != nil && ifSetting != o {
				return Command{}, fmt.Errorf("%s and %s: give one interface setting at a time", ifSetting.name(), o.name())
			}
			ifSetting = o
		}
		switch o.short {
		case 'I', 'D', 'L', 'F', 'Q', 'A':
			if !containsOpt(ops, o) {
				ops = append(ops, o)
			}
		case 'V':
			cmd.Op = OpVersion
		case '?':
			cmd.Op = OpHelp
		case 'N':
			cmd.Rule.Interfaces = append(cmd.Rule.Interfaces, s.value)
		}
		values[o.short] = s.value
		given[o.short] = o
	}
	// Like argp, --help and --version win over everything else.
	if cmd.Op == OpHelp || cmd.Op == OpVersion {
		return cmd, nil
	}
	if ifSetting != nil && ifSetting.short == '6' && len(ops) == 1 && ops[0].short == 'L' {
		// The C zfw's -L -6 all lists its IPv6 table; -L here lists
		// both families.
		if values['6'] != control.AllInterfaces {
			return Command{}, fmt.Errorf("-L -6 takes all (got %q): the listing has both families", values['6'])
		}
		ifSetting = nil
		delete(given, '6')
		settings = slices.DeleteFunc(settings, func(s setting) bool { return s.opt.short == '6' })
	}
	if ifSetting != nil {
		return interfaceSetting(settings, ifSetting)
	}
	if listOpt != nil && listOpt.arg != "" {
		return setMember(settings, listOpt)
	}
	if given['M'] != nil {
		return monitor(settings, given['M'])
	}
	if given['X'] != nil || given['H'] != nil || given['Z'] != nil {
		return attachment(settings, given, values)
	}
	if given['O'] != nil {
		return Command{}, errors.New("-O (--object-file) goes with -X, -H or -Z")
	}
	if given['W'] != nil {
		return Command{}, errors.New("-W (--write-log) goes with -M (--monitor)")
	}
	if given['B'] != nil || given['J'] != nil {
		return bindAddress(cmd, settings, values)
	}
	switch len(ops) {
	case 0:
		return Command{}, errors.New("no operation: give one of -I (insert), -D (delete), -L (list), -F (flush), -V (version) or an interface setting such as -e <ifname|all>")
	case 1:
	default:
		return Command{}, fmt.Errorf("%s and %s cannot be combined: give one operation", ops[0].name(), ops[1].name())
	}
	switch ops[0].short {
	case 'I':
		cmd.Op = OpInsert
	case 'D':
		cmd.Op = OpDelete
	case 'L':
		cmd.Op = OpList
	case 'F':
		cmd.Op = OpFlush
	case 'Q':
		cmd.Op = OpUninstall
	case 'A':
		cmd.Op = OpUserRules
	}

	// Which options go with which operation.
	allowed := map[Operation]string{
		OpInsert:    "IcmonplhtsNdrz",
		OpDelete:    "DcmonplhtsNrz",
		OpList:      "LifEzYUCG",
		OpFlush:     "FrzYUCj",
		OpUninstall: "Q",
		OpUserRules: "A",
	}[cmd.Op]
	// In command-line order, so the message names the first misfit.
	for _, s := range settings {
		if o := s.opt; o.short != 0 && !strings.ContainsRune(allowed, o.short) {
			return Command{}, fmt.Errorf("option %s does not go with %s", o.name(), ops[0].name())
		}
	}
	// Options that come in pairs.
	for _, pair := range [][2]rune{{'c', 'm'}, {'m', 'c'}, {'o', 'n'}, {'n', 'o'}} {
		if given[pair[0]] != nil && given[pair[1]] == nil {
			return Command{}, fmt.Errorf("option %s needs %s", given[pair[0]].name(), lookupShort(pair[1]).name())
		}
	}
	if given['j'] != nil {
		for _, s := range settings {
			if c := s.opt.short; c != 0 && !strings.ContainsRune("Fjr", c) {
				return Command{}, fmt.Errorf("option %s does not go with -F -j (--bind-flush)", s.opt.name())
			}
		}
		return Command{Op: OpFlush, List: control.ListBindSources, PinPath: cmd.PinPath, Socket: cmd.Socket}, nil
	}
	if listOpt != nil {
		for _, s := range settings {
			if o := s.opt; o.short != 0 && o != listOpt && o != ops[0] {
				return Command{}, fmt.Errorf("option %s does not go with %s %s", o.name(), ops[0].name(), listOpt.name())
			}
		}
		cmd.List = listOpt.list
		return cmd, nil
	}
	if given['z'] != nil {
		switch d := control.Direction(values['z']); d {
		case control.Ingress, control.Egress:
			cmd.Direction = d
		default:
			return Command{}, fmt.Errorf("bad direction %q for %s: ingress or egress", values['z'], given['z'].name())
		}
		if cmd.Op == OpInsert || cmd.Op == OpDelete {
			cmd.Rule.Egress = cmd.Direction == control.Egress
		}
	}
	if cmd.Op == OpList {
		if given['G'] != nil {
			for _, s := range settings {
				if c := s.opt.short; c != 0 && c != 'L' && c != 'G' {
					return Command{}, fmt.Errorf("option %s does not go with -L -G (--list-gc-sessions)", s.opt.name())
				}
			}
			cmd.Sessions = true
			return cmd, nil
		}
		if given['E'] != nil && given['z'] != nil {
			return Command{}, errors.New("-E (--list-diag) lists interfaces; -z limits a listing of rules")
		}
		cmd.OnlyIntercepts, cmd.OnlyPassthrough = given['i'] != nil, given['f'] != nil
		if cmd.OnlyIntercepts && cmd.OnlyPassthrough {
			return Command{}, errors.New("-i (--intercepts) and -f (--passthrough) cannot be combined")
		}
		if cmd.Interfaces = given['E'] != nil; cmd.Interfaces && (cmd.OnlyIntercepts || cmd.OnlyPassthrough) {
			return Command{}, errors.New("-E (--list-diag) lists interfaces; -i and -f filter rules")
		}
		return cmd, nil
	}
	if cmd.Op == OpFlush || cmd.Op == OpUninstall || cmd.Op == OpUserRules {
		return cmd, nil
	}

	required := "cmplh"
	if cmd.Op == OpInsert && given['d'] == nil {
		required += "t"
	}
	for _, c := range required {
		if given[c] == nil {
			return Command{}, fmt.Errorf("%s needs %s", ops[0].name(), lookupShort(c).name())
		}
	}
	r := &cmd.Rule
	if r.Destination, err = prefix(values['c'], values['m'], given['c'], given['m']); err != nil {
		return Command{}, err
	}
	if given['o'] != nil {
		if r.Source, err = prefix(values['o'], values['n'], given['o'], given['n']); err != nil {
			return Command{}, err
		}
		switch {
		case r.Source.Addr().Is4() == r.Destination.Addr().Is4():
		case r.Source.Bits() == 0:
			// Any source, whichever family it is written in: OpenZiti's
			// router passes -o 0.0.0.0 -n 0 with IPv6 intercepts too,
			// and the C zfw takes it as any source.
			any := netip.IPv4Unspecified()
			if r.Destination.Addr().Is6() {
				any = netip.IPv6Unspecified()
			}
			r.Source = netip.PrefixFrom(any, 0)
		default:
			return Command{}, fmt.Errorf("source %s and destination %s are of different address families", r.Source, r.Destination)
		}
	}
	switch p := strings.ToLower(values['p']); p {
	case "tcp", "udp":
		r.Protocol = intercept.Protocol(p)
	default:
		return Command{}, fmt.Errorf("unknown protocol %q for %s: tcp or udp", values['p'], given['p'].name())
	}
	if r.Ports.Low, err = port(values['l'], given['l'], 1); err != nil {
		return Command{}, err
	}
	if r.Ports.High, err = port(values['h'], given['h'], 1); err != nil {
		return Command{}, err
	}
	if r.Ports.Low > r.Ports.High {
		return Command{}, fmt.Errorf("low port %d is above high port %d", r.Ports.Low, r.Ports.High)
	}
	if cmd.Op == OpDelete {
		// -D identifies a rule by its match; -t and -s are accepted as
		// the C zfw does, and mean nothing.
		return cmd, nil
	}
	if given['t'] != nil {
		if r.TProxyPort, err = port(values['t'], given['t'], 0); err != nil {
			return Command{}, err
		}
	}
	if r.Egress && r.TProxyPort != 0 {
		return Command{}, fmt.Errorf("-z egress: an egress rule passes (-t 0) or drops (-d) new outbound flows; only arriving packets are steered to a listener (got -t %d)", r.TProxyPort)
	}
	if given['d'] != nil {
		if r.TProxyPort != 0 {
			return Command{}, fmt.Errorf("-d (--disable) makes a rule that drops; it takes no tproxy port (got -t %d)", r.TProxyPort)
		}
		r.Deny = true
	}
	if given['s'] != nil {
		if values['s'] == "" {
			return Command{}, errors.New("-s (--service-id) is empty")
		}
		r.ServiceID = values['s']
	}
	return cmd, nil
}

// interfaceSetting is the command of an interface setting option: the
// setting, its interface (or all), and -d to turn it off; nothing else
// but where the dataplane is.
func interfaceSetting(settings []setting, o *option) (Command, error) {
	cmd := Command{Op: OpSetInterface, Setting: o.long}
	err := only(settings, o, "d", &cmd, func(s setting) error {
		if s.opt.short == 'd' {
			cmd.Off = true
			return nil
		}
		if s.value == "" {
			return fmt.Errorf("option %s needs an interface name or all", o.name())
		}
		cmd.Interface = s.value
		return interfaceName(o, s.value, true)
	})
	return cmd, err
}

// only checks that settings hold o, the options named in with (short
// names) and where the dataplane is, and nothing else: it fills in the
// location and hands each of o's and with's settings to use.
func only(settings []setting, o *option, with string, cmd *Command, use func(setting) error) error {
	for _, s := range settings {
		switch {
		case s.opt == o || (s.opt.short != 0 && strings.ContainsRune(with, s.opt.short)):
			if err := use(s); err != nil {
				return err
			}
		case s.opt.long == "pin-path":
			cmd.PinPath = s.value
		case s.opt.long == "control-socket":
			cmd.Socket = s.value
		default:
			return fmt.Errorf("option %s does not go with %s", s.opt.name(), o.name())
		}
	}
	return nil
}

// interfaceName checks the interface an option names; all may stand for
// every interface where orAll is set.
func interfaceName(o *option, name string, orAll bool) error {
	if orAll && name == control.AllInterfaces {
		return nil
	}
	if err := intercept.CheckInterfaceName(name); err != nil {
		return fmt.Errorf("option %s: interface %q: %w", o.name(), name, err)
	}
	return nil
}

// attachment is the command of -X <if|all> -z <dir> [-d], -H <if|all>
// or -Z <if> [-d], each with -O accepted; nothing else but where the
// dataplane is.
func attachment(settings []setting, given map[rune]*option, values map[rune]string) (Command, error) {
	var o *option
	for _, c := range "XHZ" {
		if given[c] == nil {
			continue
		}
		if o != nil {
			return Command{}, fmt.Errorf("%s and %s cannot be combined", o.name(), given[c].name())
		}
		o = given[c]
	}
	cmd := Command{Op: OpAttach, Interface: values[o.short], Off: given['d'] != nil}
	with := map[rune]string{'X': "Ozd", 'H': "O", 'Z': "Od"}[o.short]
	if err := only(settings, o, with, &cmd, func(setting) error { return nil }); err != nil {
		return Command{}, err
	}
	if o.short == 'Z' && cmd.Interface == control.AllInterfaces {
		return Command{}, fmt.Errorf("option %s takes the one interface that is the Ziti tun, not all", o.name())
	}
	if err := interfaceName(o, cmd.Interface, true); err != nil {
		return Command{}, err
	}
	switch o.short {
	case 'X':
		if given['z'] == nil {
			return Command{}, fmt.Errorf("%s needs %s (ingress or egress)", o.name(), lookupShort('z').name())
		}
		switch d := control.Direction(values['z']); d {
		case control.Ingress, control.Egress:
			cmd.Direction = d
		default:
			return Command{}, fmt.Errorf("bad direction %q for %s: ingress or egress", values['z'], given['z'].name())
		}
		if cmd.Direction == control.Egress && !cmd.Off {
			cmd.Note = "-X -z egress: the egress program is attached with the ingress one"
		}
	case 'Z':
		cmd.Op = OpTunnel
	}
	if given['O'] != nil {
		cmd.Note = strings.TrimPrefix(cmd.Note+"; ", "; ") + "-O: " + objectReason
	}
	return cmd, nil
}

// monitor is the command of -M <ifname|all> [-W file]; nothing else but
// where the dataplane is.
func monitor(settings []setting, o *option) (Command, error) {
	cmd := Command{Op: OpMonitor}
	err := only(settings, o, "W", &cmd, func(s setting) error {
		if s.opt.short == 'W' {
			if s.value == "" {
				return fmt.Errorf("option %s needs a file name", s.opt.name())
			}
			cmd.LogFile = s.value
			return nil
		}
		cmd.Interface = s.value
		return interfaceName(o, s.value, true)
	})
	return cmd, err
}

// bindAddress is -B or -J <addr> -m <len>: a local source added or
// removed, checked as the C zfw checks it.
func bindAddress(cmd Command, settings []setting, values map[rune]string) (Command, error) {
	var o *option
	for _, s := range settings {
		switch c := s.opt.short; {
		case c == 'B' || c == 'J':
			if o != nil && o != s.opt {
				return Command{}, fmt.Errorf("%s and %s cannot be combined", o.name(), s.opt.name())
			}
			o = s.opt
		case c == 'm' || s.opt.long == "pin-path" || s.opt.long == "control-socket":
		default:
			return Command{}, fmt.Errorf("option %s does not go with %s", s.opt.name(), lookupShort('B').name())
		}
	}
	m, ok := values['m']
	if !ok {
		return Command{}, fmt.Errorf("%s needs %s", o.name(), lookupShort('m').name())
	}
	p, err := prefix(values[o.short], m, o, lookupShort('m'))
	if err != nil {
		return Command{}, err
	}
	return Command{Op: OpSetMember, List: control.ListBindSources, Member: p.String(), Off: o.short == 'J', PinPath: cmd.PinPath, Socket: cmd.Socket}, nil
}

// setMember is the command of a list option that takes a value (-y, -u,
// -g): the value, and -d to remove it; nothing else but where the
// dataplane is.
func setMember(settings []setting, o *option) (Command, error) {
	cmd := Command{Op: OpSetMember, List: o.list}
	err := only(settings, o, "d", &cmd, func(s setting) error {
		if s.opt.short == 'd' {
			cmd.Off = true
			return nil
		}
		if s.value == "" {
			return fmt.Errorf("option %s needs a value (%s)", o.name(), o.arg)
		}
		cmd.Member = s.value
		return nil
	})
	return cmd, err
}

// WriteOptions prints the supported options, one a line, for a usage
// message.
func WriteOptions(w io.Writer) {
	for _, o := range options {
		flag := "    "
		if o.short != 0 {
			flag = fmt.Sprintf("-%c, ", o.short)
		}
		name := "--" + o.long
		if o.arg != "" {
			name += "=" + o.arg
		}
		fmt.Fprintf(w, "  %s%-26s %s\n", flag, name, o.help)
	}
}

func containsOpt(list []*option, o *option) bool {
	for _, x := range list {
		if x == o {
			return true
		}
	}
	return false
}

// prefix parses an address and a prefix length given as two options.
func prefix(addr, length string, ao, lo *option) (netip.Prefix, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("bad address %q for %s", addr, ao.name())
	}
	a = a.Unmap()
	n, err := strconv.ParseUint(length, 10, 8)
	if err != nil || int(n) > a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("bad prefix length %q for %s: 0 to %d for %s", length, lo.name(), a.BitLen(), a)
	}
	return netip.PrefixFrom(a, int(n)).Masked(), nil
}

// port parses a port number from min to 65535.
func port(s string, o *option, min uint64) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n < min {
		return 0, fmt.Errorf("bad port %q for %s: %d to 65535", s, o.name(), min)
	}
	return uint16(n), nil
}
