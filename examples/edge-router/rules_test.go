package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw"
)

func rule(action zfw.Action, proto intercept.Protocol, dst, src string, low, high, tport uint16) zfw.Rule {
	r := zfw.Rule{Action: action, Protocol: proto, Destination: netip.MustParsePrefix(dst),
		Ports: intercept.PortRange{Low: low, High: high}, TProxyPort: tport}
	if src != "" {
		r.Source = netip.MustParsePrefix(src)
	}
	return r
}

func withIfs(r zfw.Rule, ifs ...string) zfw.Rule { r.Interfaces = ifs; return r }
func withID(r zfw.Rule, id string) zfw.Rule      { r.ServiceID = id; return r }
func egress(r zfw.Rule) zfw.Rule                 { r.Egress = true; return r }

func TestParseRules(t *testing.T) {
	tests := []struct {
		name, file, text string
		want             []UserRule
	}{
		{
			name: "user_rules.sh lines",
			file: "/etc/zfw/user_rules.sh",
			text: `#!/bin/bash
# router listeners
/opt/openziti/bin/zfw -I -c 10.0.0.1 -m 32 -l 443 -h 443 -t 0 -p tcp -N eth1   # edge
zfw -I -c 10.0.0.0 -m 24 -o 10.1.0.0 -n 16 -p udp -l 53 -h 53 -t 5353 -s dns

-I -d -c 0.0.0.0 -m 0 -p tcp -l 23 -h 23
`,
			want: []UserRule{
				{"user_rules.sh:3", withIfs(rule(zfw.Pass, intercept.TCP, "10.0.0.1/32", "", 443, 443, 0), "eth1")},
				{"user_rules.sh:4", withID(rule(zfw.TProxy, intercept.UDP, "10.0.0.0/24", "10.1.0.0/16", 53, 53, 5353), "dns")},
				{"user_rules.sh:6", rule(zfw.Deny, intercept.TCP, "0.0.0.0/0", "", 23, 23, 0)},
			},
		},
		{
			name: "empty text file",
			file: "rules.txt",
			text: "\n# nothing\n",
		},
		{
			name: "JSON",
			file: "rules.JSON",
			text: `[
 {"action":"pass","protocol":"tcp","destination":"10.0.0.1","ports":443,"interfaces":["eth1","eth2"]},
 {"action":"TProxy","protocol":"UDP","destination":"10.0.0.9/24","source":"10.1.2.3/16","ports":"53","tproxyPort":5353,"serviceId":"dns"},
 {"action":"deny","protocol":"tcp","destination":"fd00::/64","ports":"1-1023","egress":true}
]`,
			want: []UserRule{
				{"rules.JSON[0]", withIfs(rule(zfw.Pass, intercept.TCP, "10.0.0.1/32", "", 443, 443, 0), "eth1", "eth2")},
				{"rules.JSON[1]", withID(rule(zfw.TProxy, intercept.UDP, "10.0.0.0/24", "10.1.0.0/16", 53, 53, 5353), "dns")},
				{"rules.JSON[2]", egress(rule(zfw.Deny, intercept.TCP, "fd00::/64", "", 1, 1023, 0))},
			},
		},
		{
			name: "empty JSON list",
			file: "rules.json",
			text: `[]`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRules(tc.file, []byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseRules =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestParseRulesRefuses(t *testing.T) {
	tests := []struct {
		name, file, text string
		want             []string
	}{
		{"delete line", "r.txt", "zfw -D -c 10.0.0.0 -m 24 -p tcp -l 1 -h 2", []string{"r.txt:1: only -I (insert) lines"}},
		{"bad line among good ones", "r.txt", "-I -c 10.0.0.0 -m 24 -p tcp -l 1 -h 2 -t 0\n-I -c 10.0.0.0 -m 24 -p icmp -l 1 -h 2 -t 0\n-I -c 10.0.0.0 -m 33 -p tcp -l 1 -h 2 -t 0",
			[]string{`r.txt:2: unknown protocol "icmp"`, `r.txt:3: bad prefix length "33"`}},
		{"location options", "r.txt", "-I -c 10.0.0.0 -m 24 -p tcp -l 1 -h 2 -t 0 --pin-path /sys/fs/bpf/x", []string{"r.txt:1: --pin-path and --control-socket do not belong"}},
		{"interface setting", "r.txt", "zfw -e eth0", []string{"r.txt:1: only -I (insert) lines"}},
		{"JSON syntax", "r.json", "[{]", []string{"r.json: bad JSON at line 1, column 3"}},
		{"JSON object", "r.json", `{"action":"pass"}`, []string{"r.json: ", "is not a list"}},
		{"JSON unknown field", "r.json", `[{"action":"pass","protocol":"tcp","destination":"10.0.0.1","ports":1,"port":2}]`, []string{"r.json[0].port: unknown field"}},
		{"JSON bad ports", "r.json", `[{"action":"pass","protocol":"tcp","destination":"10.0.0.1","ports":"9-1"}]`, []string{`r.json[0].ports: "9-1" is not a port or range`}},
		{"JSON port zero", "r.json", `[{"action":"pass","protocol":"tcp","destination":"10.0.0.1","ports":0}]`, []string{"r.json[0].ports: 0 is not a port"}},
		{"JSON missing fields", "r.json", `[{"protocol":"tcp"},{"action":"pass","protocol":"tcp","ports":1},{"action":"pass","protocol":"tcp","destination":"10.0.0.1"}]`,
			[]string{"r.json[0]: action: missing", "r.json[1]: destination: missing", "r.json[2]: ports: missing"}},
		{"JSON bad values", "r.json", `[{"action":"allow","protocol":"tcp","destination":"10.0.0.1","ports":1},
{"action":"pass","protocol":"sctp","destination":"10.0.0.1","ports":1},
{"action":"pass","protocol":"tcp","destination":"10.0.0.1/40","ports":1},
{"action":"pass","protocol":"tcp","destination":"10.0.0.1","source":"x","ports":1},
{"action":"tproxy","protocol":"tcp","destination":"10.0.0.1","ports":1},
{"action":"pass","protocol":"tcp","destination":"10.0.0.1","ports":1,"tproxyPort":8}]`,
			[]string{`r.json[0]: action: "allow" is not pass`, `r.json[1]: protocol: "sctp"`, `r.json[2]: destination: "10.0.0.1/40" is not a prefix`,
				`r.json[3]: source: "x"`, "r.json[4]: tproxyPort: a tproxy rule needs one", "r.json[5]: tproxyPort"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRules(tc.file, []byte(tc.text))
			if err == nil {
				t.Fatalf("ParseRules = %+v, want an error", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

// routerConfig is a valid config with internal eth0 and external eth1.
func routerConfig(t *testing.T) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(`{"InternalInterfaces":[{"Name":"eth0"}],"ExternalInterfaces":[{"Name":"eth1","Masquerade":true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(present); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCheckRules(t *testing.T) {
	tests := []struct {
		name, file, text string
		want             []string // nil: valid
	}{
		{"valid", "r.txt", "-I -c 10.0.0.1 -m 32 -p tcp -l 443 -h 443 -t 0 -N eth1\n-I -c 10.0.0.1 -m 32 -p tcp -l 444 -h 444 -t 0 -N eth1 -N eth0", nil},
		{"unknown interface", "r.txt", "-I -c 10.0.0.1 -m 32 -p tcp -l 443 -h 443 -t 0 -N eth2", []string{"r.txt:1: ", "eth2 is not an interface of the config"}},
		{"same match twice", "r.txt", "-I -c 10.0.0.1 -m 32 -p tcp -l 443 -h 443 -t 0\n-I -c 10.0.0.1 -m 32 -p tcp -l 443 -h 443 -t 7000", []string{"r.txt:2: same match as r.txt:1"}},
		{"same match as any source", "r.txt", "-I -c 10.0.0.1 -m 32 -p tcp -l 443 -h 443 -t 0\n-I -c 10.0.0.1 -m 32 -o 0.0.0.0 -n 0 -p tcp -l 443 -h 443 -d", []string{"r.txt:2: same match as r.txt:1"}},
		{"egress tproxy", "r.json", `[{"action":"tproxy","protocol":"tcp","destination":"10.0.0.1","ports":1,"tproxyPort":9,"egress":true}]`, []string{"r.json[0]: ", "egress rules pass or deny"}},
		{"long service id", "r.txt", "-I -c 10.0.0.1 -m 32 -p tcp -l 443 -h 443 -t 9 -s " + strings.Repeat("x", 40), []string{"r.txt:1: ", "service id", "40 bytes, at most 32"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := ParseRules(tc.file, []byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			err = checkRules(routerConfig(t), rules)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("checkRules: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("checkRules accepted the rules, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

// TestEnsureRuleIsIdempotent: a restarted router applies its rules file
// again over the rules it adopted; a rule equal to one there changes
// nothing, one with the same match but another effect replaces it.
func TestEnsureRuleIsIdempotent(t *testing.T) {
	fw, err := zfw.New(zfw.Options{InMemory: true, MaxRules: 64, MaxPrefixes: 64, Logger: quietLogger(),
		Interfaces:     []zfw.Interface{{Name: "eth0"}, {Name: "eth1"}},
		InterfaceIndex: func(name string) (int, error) { return map[string]int{"eth0": 1, "eth1": 2}[name], nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	ctx := context.Background()
	base := withIfs(rule(zfw.Pass, intercept.TCP, "10.0.0.1/32", "", 443, 443, 0), "eth0", "eth1")
	steps := []struct {
		name string
		r    zfw.Rule
		want change
	}{
		{"first", base, added},
		{"again", base, unchanged},
		{"interfaces in another order", withIfs(base, "eth1", "eth0"), unchanged},
		{"fewer interfaces", withIfs(base, "eth1"), updated},
		{"now a tproxy", withIfs(rule(zfw.TProxy, intercept.TCP, "10.0.0.1/32", "0.0.0.0/0", 443, 443, 7000), "eth1"), updated},
		{"another port", rule(zfw.Pass, intercept.TCP, "10.0.0.1/32", "", 444, 444, 0), added},
	}
	for _, s := range steps {
		got, _, err := ensureRule(ctx, fw.Rules(), s.r)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got != s.want {
			t.Errorf("%s: change %d, want %d", s.name, got, s.want)
		}
	}
	list := fw.Rules().List()
	if len(list) != 2 {
		t.Fatalf("%d rules, want 2: %+v", len(list), list)
	}
	for _, ri := range list {
		if ri.Ports.Low == 443 && (ri.Action != zfw.TProxy || ri.TProxyPort != 7000 || !reflect.DeepEqual(ri.Interfaces, []string{"eth1"})) {
			t.Errorf("rule for 443 is %+v, want the last replacement", ri)
		}
	}
}

// TestCheckCommand runs `edge-router check` on files, with lo as the
// interface that exists in every network namespace.
func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"InternalInterfaces":[{"Name":"lo","Verbose":true}]}`)
	missing := write("missing.json", `{"ExternalInterfaces":[{"Name":"zfwt-absent0"}]}`)
	rules := write("rules.txt", "-I -c 10.0.0.1 -m 32 -p tcp -l 443 -h 443 -t 0 -N lo\n")
	badRules := write("bad.txt", "-I -c 10.0.0.1 -m 32 -p tcp -l 443 -h 443 -t 0 -N eth7\n")
	tests := []struct {
		name string
		args []string
		code int
		out  string // in stdout (code 0) or stderr
	}{
		{"valid", []string{"check", "--config", good, "--rules", rules}, 0, "internal lo: Verbose\n  1 user rules"},
		{"missing interface", []string{"check", "--config", missing}, 1, "ExternalInterfaces[0].Name: interface zfwt-absent0 not found"},
		{"bad rules", []string{"check", "--config", good, "--rules", badRules}, 1, "bad.txt:1: "},
		{"no such file", []string{"check", "--config", filepath.Join(dir, "none.json")}, 1, "no such file"},
		{"no config", []string{"check"}, 2, "--config is required"},
		{"stray argument", []string{"check", "--config", good, "extra"}, 2, `unexpected argument "extra"`},
		{"unknown flag", []string{"check", "--cfg", good}, 2, "flag provided but not defined"},
		{"unknown command", []string{"start"}, 2, `unknown command "start"`},
		{"no command", nil, 2, "Usage:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errOut)
			text := errOut.String()
			if tc.code == 0 {
				text = out.String()
			}
			if code != tc.code || !strings.Contains(text, tc.out) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out.String(), errOut.String(), tc.code, tc.out)
			}
		})
	}
}
