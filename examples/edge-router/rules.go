package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/examples/internal/zfwargs"
	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw"
)

// UserRule is one rule of the user rules file and where it is written.
type UserRule struct {
	// Where is the file and line ("user_rules.txt:3") or list index
	// ("user_rules.json[2]").
	Where string
	Rule  zfw.Rule
}

// ParseRules reads a user rules file. A name ending in ".json" holds a
// JSON list of rule objects:
//
//	[{"action": "pass", "protocol": "tcp", "destination": "10.0.0.1/32",
//	  "source": "10.1.0.0/16", "ports": "80-90", "interfaces": ["eth1"]},
//	 {"action": "tproxy", "protocol": "udp", "destination": "10.9.0.0/24",
//	  "ports": 53, "tproxyPort": 5353, "serviceId": "dns"},
//	 {"action": "deny", "protocol": "tcp", "destination": "0.0.0.0/0",
//	  "ports": "25", "egress": true}]
//
// (action pass, deny or tproxy; ports a number or "low-high"; source,
// tproxyPort, serviceId, interfaces and egress optional). Any other
// name holds zfw -I command lines, one a line, as the C zfw's
// user_rules.sh runs them; a leading program word ending in "zfw" is
// skipped, and blank lines and words from "#" on are ignored:
//
//	/opt/openziti/bin/zfw -I -c 10.0.0.1 -m 32 -p tcp -l 80 -h 90 -t 0 -N eth1
func ParseRules(name string, data []byte) ([]UserRule, error) {
	base := filepath.Base(name)
	if strings.HasSuffix(strings.ToLower(name), ".json") {
		return parseJSONRules(base, data)
	}
	return parseRuleLines(base, string(data))
}

// jsonRule is one rule of a JSON rules file.
type jsonRule struct {
	Action      string    `json:"action"`
	Protocol    string    `json:"protocol"`
	Destination string    `json:"destination"`
	Source      string    `json:"source"`
	Ports       portRange `json:"ports"`
	TProxyPort  uint16    `json:"tproxyPort"`
	ServiceID   string    `json:"serviceId"`
	Interfaces  []string  `json:"interfaces"`
	Egress      bool      `json:"egress"`
}

// portRange is a port ("80", 80) or range ("80-90") in a JSON rule.
type portRange intercept.PortRange

// UnmarshalJSON implements json.Unmarshaler.
func (p *portRange) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		s = string(b) // a number
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, errL := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	h, errH := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if errL != nil || errH != nil || l == 0 || l > h {
		return fmt.Errorf("%s is not a port or range such as 80 or \"80-90\" (ports 1-65535)", b)
	}
	*p = portRange{Low: uint16(l), High: uint16(h)}
	return nil
}

func parseJSONRules(file string, data []byte) ([]UserRule, error) {
	var list []jsonRule
	if err := decodeStrict(data, &list, file); err != nil {
		return nil, err
	}
	var (
		out  []UserRule
		errs []error
	)
	for i, jr := range list {
		where := fmt.Sprintf("%s[%d]", file, i)
		r, err := jr.rule()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		out = append(out, UserRule{Where: where, Rule: r})
	}
	return out, errors.Join(errs...)
}

func (jr jsonRule) rule() (zfw.Rule, error) {
	r := zfw.Rule{
		Protocol: intercept.Protocol(strings.ToLower(jr.Protocol)),
		Ports:    intercept.PortRange(jr.Ports), TProxyPort: jr.TProxyPort,
		ServiceID: jr.ServiceID, Interfaces: jr.Interfaces, Egress: jr.Egress,
	}
	switch strings.ToLower(jr.Action) {
	case "pass":
		r.Action = zfw.Pass
	case "deny":
		r.Action = zfw.Deny
	case "tproxy":
		r.Action = zfw.TProxy
	case "":
		return r, errors.New("action: missing (pass, deny or tproxy)")
	default:
		return r, fmt.Errorf("action: %q is not pass, deny or tproxy", jr.Action)
	}
	if r.Protocol != intercept.TCP && r.Protocol != intercept.UDP {
		return r, fmt.Errorf("protocol: %q is not tcp or udp", jr.Protocol)
	}
	if r.Ports.Low == 0 {
		return r, errors.New("ports: missing")
	}
	var err error
	if jr.Destination == "" {
		return r, errors.New("destination: missing")
	}
	if r.Destination, err = parsePrefix(jr.Destination); err != nil {
		return r, fmt.Errorf("destination: %w", err)
	}
	if jr.Source != "" {
		if r.Source, err = parsePrefix(jr.Source); err != nil {
			return r, fmt.Errorf("source: %w", err)
		}
	}
	if (r.Action == zfw.TProxy) != (r.TProxyPort != 0) {
		return r, errors.New("tproxyPort: a tproxy rule needs one (1-65535), and only a tproxy rule has one")
	}
	return r, nil
}

// parsePrefix parses "10.0.0.0/24" or an address ("10.0.0.1", a /32).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("%q is not a prefix such as 10.0.0.0/24", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func parseRuleLines(file, text string) ([]UserRule, error) {
	var (
		out  []UserRule
		errs []error
	)
	for i, line := range strings.Split(text, "\n") {
		where := fmt.Sprintf("%s:%d", file, i+1)
		words := strings.Fields(line)
		if j := slices.IndexFunc(words, func(w string) bool { return strings.HasPrefix(w, "#") }); j >= 0 {
			words = words[:j]
		}
		if len(words) == 0 {
			continue
		}
		if !strings.HasPrefix(words[0], "-") && strings.HasSuffix(words[0], "zfw") {
			words = words[1:]
		}
		r, err := lineRule(words)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		out = append(out, UserRule{Where: where, Rule: r})
	}
	return out, errors.Join(errs...)
}

// lineRule is the rule of one zfw -I command line.
func lineRule(args []string) (zfw.Rule, error) {
	cmd, err := zfwargs.Parse(args)
	if err != nil {
		return zfw.Rule{}, err
	}
	if cmd.Op != zfwargs.OpInsert {
		return zfw.Rule{}, errors.New("only -I (insert) lines belong in a rules file")
	}
	if cmd.PinPath != "" || cmd.Socket != "" {
		return zfw.Rule{}, errors.New("--pin-path and --control-socket do not belong in a rules file")
	}
	return cmd.Rule.FirewallRule(), nil
}

// change says what ensureRule did.
type change int

const (
	added change = iota
	updated
	unchanged
)

// ensureRule installs r unless a rule with its match is there: one that
// does the same on the same interfaces stays, one that differs is
// replaced by r. So a restarted router that adopts its dataplane leaves
// the user rules of its previous run as they are.
func ensureRule(ctx context.Context, rs *zfw.Rules, r zfw.Rule) (change, uint32, error) {
	found := rs.Find(r)
	if len(found) == 0 {
		id, err := rs.Add(ctx, r)
		return added, id, err
	}
	have := found[0]
	if have.Action == r.Action && have.TProxyPort == r.TProxyPort && have.ServiceID == r.ServiceID && sameSet(have.Interfaces, r.Interfaces) {
		return unchanged, have.ID, nil
	}
	id, err := rs.Replace(ctx, have.ID, r)
	return updated, id, err
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// applyRules ensures every rule on fw and logs what changed.
func applyRules(ctx context.Context, fw *zfw.Firewall, rules []UserRule, log logrus.FieldLogger) error {
	var counts [3]int
	for _, ur := range rules {
		c, _, err := ensureRule(ctx, fw.Rules(), ur.Rule)
		if err != nil {
			return fmt.Errorf("%s: %w", ur.Where, err)
		}
		counts[c]++
	}
	if len(rules) > 0 {
		log.WithFields(logrus.Fields{"added": counts[added], "updated": counts[updated], "unchanged": counts[unchanged]}).Info("user rules applied")
	}
	return nil
}

// checkRules installs rules on an in-memory firewall with cfg's
// interfaces, touching no kernel state, and reports every rule the
// dataplane would refuse, a rule naming an interface that is not in
// cfg, and rules of the file that share a match (the later would
// replace the earlier).
func checkRules(cfg *Config, rules []UserRule) error {
	ifaces := cfg.Interfaces()
	fw, err := zfw.New(zfw.Options{
		InMemory:   true,
		Interfaces: ifaces,
		InterfaceIndex: func(name string) (int, error) {
			i := slices.IndexFunc(ifaces, func(ifc zfw.Interface) bool { return ifc.Name == name })
			if i < 0 {
				return 0, fmt.Errorf("%s is not an interface of the config", name)
			}
			return i + 1, nil
		},
		Logger: quietLogger(),
	})
	if err != nil {
		return err
	}
	defer fw.Close()
	var errs []error
	where := make(map[uint32]string)
	for _, ur := range rules {
		before := fw.Rules().Find(ur.Rule)
		c, id, err := ensureRule(context.Background(), fw.Rules(), ur.Rule)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", ur.Where, err))
		case c != added:
			errs = append(errs, fmt.Errorf("%s: same match as %s", ur.Where, where[before[0].ID]))
			where[id] = where[before[0].ID]
		default:
			where[id] = ur.Where
		}
	}
	return errors.Join(errs...)
}

// quietLogger discards everything below warnings.
func quietLogger() logrus.FieldLogger {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	return l
}
