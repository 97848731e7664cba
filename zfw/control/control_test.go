package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/zfwtest"
)

// memFirewall is an in-memory Firewall with interfaces eth1 to eth3.
func memFirewall(t testing.TB) *zfw.Firewall {
	return zfwtest.New(t, zfw.Interface{Name: "eth1"}, zfw.Interface{Name: "eth2"}, zfw.Interface{Name: "eth3"}).Firewall
}

// serve serves fw on a socket in a temporary folder and returns a
// connected client.
func serve(t testing.TB, fw *zfw.Firewall) (*Client, *Server) {
	t.Helper()
	s, err := Listen(filepath.Join(t.TempDir(), "zfw.sock"), fw, ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c, err := Dial(context.Background(), s.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, s
}

// controllers gives each way to run the operations on a fresh firewall.
func controllers(t *testing.T) map[string]func(t *testing.T) (Controller, *zfw.Firewall) {
	return map[string]func(t *testing.T) (Controller, *zfw.Firewall){
		"local": func(t *testing.T) (Controller, *zfw.Firewall) {
			fw := memFirewall(t)
			return NewLocal(fw), fw
		},
		"socket": func(t *testing.T) (Controller, *zfw.Firewall) {
			fw := memFirewall(t)
			c, _ := serve(t, fw)
			return c, fw
		},
	}
}

func rule(port uint16, sid string, ifaces ...string) Rule {
	return Rule{
		Match: Match{
			Destination: netip.MustParsePrefix("10.20.0.0/24"),
			Source:      netip.MustParsePrefix("0.0.0.0/0"),
			Protocol:    intercept.TCP,
			Ports:       intercept.PortRange{Low: 443, High: 443},
			Interfaces:  ifaces,
		},
		TProxyPort: port, ServiceID: sid,
	}
}

// describe is an installed rule in a line the tests compare.
func describe(ri zfw.RuleInfo) string {
	ifs := "all"
	if len(ri.Interfaces) > 0 {
		s := slices.Sorted(slices.Values(ri.Interfaces))
		ifs = strings.Join(s, ",")
	}
	return fmt.Sprintf("%s %s %s %s port %d sid %q on %s", ri.Action, ri.Protocol, ri.Destination, ri.Ports, ri.TProxyPort, ri.ServiceID, ifs)
}

func listing(t *testing.T, c Controller) []string {
	t.Helper()
	l, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ri := range l.Rules {
		out = append(out, describe(ri))
	}
	return out
}

type step struct {
	insert     *Rule
	delete     *Match
	want       Change
	wantErr    string // substring; "" means success
	isNotFound bool
}

func ins(r Rule, want Change) step { return step{insert: &r, want: want} }
func del(r Rule, want Change) step { return step{delete: &r.Match, want: want} }
func delMissing(r Rule) step {
	return step{delete: &r.Match, wantErr: "no such rule", isNotFound: true}
}

func TestOperations(t *testing.T) {
	deny := rule(0, "")
	deny.Deny = true
	bad := rule(4000, "a")
	bad.Ports = intercept.PortRange{Low: 500, High: 400}
	tests := []struct {
		name  string
		steps []step
		want  []string
	}{
		{"insert twice is one rule",
			[]step{ins(rule(4000, "a"), Added), ins(rule(4000, "a"), Unchanged)},
			[]string{`tproxy tcp 10.20.0.0/24 443 port 4000 sid "a" on all`}},
		{"insert with a new listener replaces the rule",
			[]step{ins(rule(4000, "a"), Added), ins(rule(5000, "b"), Updated)},
			[]string{`tproxy tcp 10.20.0.0/24 443 port 5000 sid "b" on all`}},
		{"inserts naming interfaces add them",
			[]step{ins(rule(4000, "a", "eth1"), Added), ins(rule(4000, "a", "eth2"), Updated), ins(rule(4000, "a", "eth1"), Unchanged)},
			[]string{`tproxy tcp 10.20.0.0/24 443 port 4000 sid "a" on eth1,eth2`}},
		{"deletes naming interfaces remove them, then the rule",
			[]step{ins(rule(4000, "a", "eth1"), Added), ins(rule(4000, "a", "eth2"), Updated),
				del(rule(0, "", "eth1"), Updated), del(rule(0, "", "eth2"), Removed)},
			nil},
		{"insert without interfaces widens to all",
			[]step{ins(rule(4000, "a", "eth1"), Added), ins(rule(4000, "a"), Updated)},
			[]string{`tproxy tcp 10.20.0.0/24 443 port 4000 sid "a" on all`}},
		{"insert with interfaces narrows an all-interfaces rule",
			[]step{ins(rule(4000, "a"), Added), ins(rule(4000, "a", "eth3"), Updated)},
			[]string{`tproxy tcp 10.20.0.0/24 443 port 4000 sid "a" on eth3`}},
		{"delete of a missing rule is not found",
			[]step{delMissing(rule(0, ""))}, nil},
		{"delete on another interface is not found",
			[]step{ins(rule(4000, "a", "eth1"), Added), delMissing(rule(0, "", "eth2"))},
			[]string{`tproxy tcp 10.20.0.0/24 443 port 4000 sid "a" on eth1`}},
		{"delete without interfaces removes a limited rule",
			[]step{ins(rule(4000, "a", "eth1", "eth2"), Added), del(rule(0, ""), Removed)}, nil},
		{"delete naming an interface removes an all-interfaces rule",
			[]step{ins(rule(4000, "a"), Added), del(rule(0, "", "eth1"), Removed)}, nil},
		{"tproxy port 0 passes to the host",
			[]step{ins(rule(0, "a"), Added)},
			[]string{`pass tcp 10.20.0.0/24 443 port 0 sid "a" on all`}},
		{"deny",
			[]step{ins(deny, Added)},
			[]string{`deny tcp 10.20.0.0/24 443 port 0 sid "" on all`}},
		{"an invalid rule is refused",
			[]step{{insert: &bad, wantErr: "low 500 > high 400"}}, nil},
		{"an unknown interface is refused",
			[]step{{insert: ptr(rule(4000, "a", "nope0")), wantErr: "nope0"}}, nil},
	}
	for cname, mk := range controllers(t) {
		for _, tc := range tests {
			t.Run(cname+"/"+tc.name, func(t *testing.T) {
				c, _ := mk(t)
				ctx := context.Background()
				for i, s := range tc.steps {
					var (
						got Change
						err error
					)
					if s.insert != nil {
						got, err = c.Insert(ctx, *s.insert)
					} else {
						got, err = c.Delete(ctx, *s.delete)
					}
					switch {
					case s.wantErr == "" && err != nil:
						t.Fatalf("step %d: %v", i, err)
					case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
						t.Fatalf("step %d: error %v, want one containing %q", i, err, s.wantErr)
					case s.wantErr != "" && errors.Is(err, zfw.ErrNotFound) != s.isNotFound:
						t.Fatalf("step %d: errors.Is(%v, ErrNotFound) = %v, want %v", i, err, !s.isNotFound, s.isNotFound)
					case got != s.want:
						t.Fatalf("step %d: change %q, want %q", i, got, s.want)
					}
				}
				if got := listing(t, c); !slices.Equal(got, tc.want) {
					t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
				}
			})
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestFlushKeepsIntercepts(t *testing.T) {
	for cname, mk := range controllers(t) {
		t.Run(cname, func(t *testing.T) {
			c, fw := mk(t)
			ctx := context.Background()
			ic := intercept.Intercept{
				ServiceID: "svc", Protocols: []intercept.Protocol{intercept.UDP},
				Addresses: []netip.Prefix{netip.MustParsePrefix("10.30.0.1/32")},
				Ports:     []intercept.PortRange{{Low: 53, High: 53}}, TProxyPort: 7000,
			}
			if err := fw.Register(ctx, ic); err != nil {
				t.Fatal(err)
			}
			for _, p := range []uint16{4000, 4001} {
				r := rule(p, "a")
				r.Ports = intercept.PortRange{Low: p, High: p}
				if _, err := c.Insert(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			l, err := c.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Rules) != 3 || l.Usage.Rules != 3 || l.Usage.MaxRules != 250000 {
				t.Fatalf("before flush: %d rules, usage %+v; want 3 of 250000", len(l.Rules), l.Usage)
			}
			if err := c.Flush(ctx, BothDirections); err != nil {
				t.Fatal(err)
			}
			want := []string{`tproxy udp 10.30.0.1/32 53 port 7000 sid "svc" on all`}
			if got := listing(t, c); !slices.Equal(got, want) {
				t.Errorf("after flush: %v, want %v", got, want)
			}
		})
	}
}

func TestVersionIsTheServers(t *testing.T) {
	c, _ := serve(t, memFirewall(t))
	v, err := c.Version(context.Background())
	if err != nil || v != BuildVersion() || v == "" {
		t.Errorf("Version = %q, %v; want %q", v, err, BuildVersion())
	}
}

func TestSocketPath(t *testing.T) {
	for pin, want := range map[string]string{
		"":                       "/run/zfw/zfw.sock",
		"/sys/fs/bpf/zfw":        "/run/zfw/zfw.sock",
		"/sys/fs/bpf/router-a/":  "/run/zfw/router-a.sock",
		"/sys/fs/bpf/x/tunneler": "/run/zfw/tunneler.sock",
	} {
		if got := SocketPath(pin); got != want {
			t.Errorf("SocketPath(%q) = %q, want %q", pin, got, want)
		}
	}
}

// Flush with a direction removes that direction's rules only, and an
// egress rule is told from an ingress one of the same match.
func TestFlushOfOneDirectionKeepsTheOther(t *testing.T) {
	pass := func(egress bool) Rule {
		r := rule(0, "")
		r.Egress = egress
		return r
	}
	directions := func(c Controller) []bool {
		l, err := c.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var out []bool
		for _, ri := range l.Rules {
			out = append(out, ri.Egress)
		}
		return out
	}
	for _, tc := range []struct {
		flush Direction
		want  []bool // the Egress of the rules left
	}{
		{BothDirections, nil},
		{Ingress, []bool{true}},
		{Egress, []bool{false}},
	} {
		for cname, mk := range controllers(t) {
			t.Run(fmt.Sprintf("%s/%q", cname, tc.flush), func(t *testing.T) {
				c, _ := mk(t)
				ctx := context.Background()
				for _, egress := range []bool{false, true} {
					if got, err := c.Insert(ctx, pass(egress)); err != nil || got != Added {
						t.Fatalf("insert (egress %v): %q, %v; want a rule added", egress, got, err)
					}
				}
				if got := directions(c); len(got) != 2 {
					t.Fatalf("before flush: egress of the rules %v, want two rules", got)
				}
				if err := c.Flush(ctx, tc.flush); err != nil {
					t.Fatal(err)
				}
				if got := directions(c); !slices.Equal(got, tc.want) {
					t.Errorf("after flush: egress of the rules %v, want %v", got, tc.want)
				}
			})
		}
	}
	c, _ := serve(t, memFirewall(t))
	if err := c.Flush(context.Background(), "sideways"); err == nil || !strings.Contains(err.Error(), "ingress or egress") {
		t.Errorf("Flush(sideways) = %v, want a refusal naming the directions", err)
	}
}
