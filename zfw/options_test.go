package zfw

import (
	"strings"
	"testing"
)

func TestOptionsValidation(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		says string
	}{
		{"empty interface name", Options{Interfaces: []Interface{{Name: ""}}}, "interfaces[0]"},
		{"interface name too long", Options{Interfaces: []Interface{{Name: "abcdefghijklmnop"}}}, "1 to 15 bytes"},
		{"interface name with slash", Options{Interfaces: []Interface{{Name: "a/b"}}}, "contains"},
		{"interface listed twice", Options{Interfaces: []Interface{{Name: "eth0"}, {Name: "eth0"}}}, "listed twice"},
		{"negative route table", Options{RouteTable: -1}, "must not be negative"},
		{"negative rule capacity", Options{MaxRules: -1}, "MaxRules"},
		{"huge prefix capacity", Options{MaxPrefixes: 1 << 30}, "MaxPrefixes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.InMemory = true
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("New = %v, want an error saying %q", err, tc.says)
			}
		})
	}
	t.Run("unresolvable interface in memory mode", func(t *testing.T) {
		_, err := New(Options{InMemory: true, Interfaces: []Interface{{Name: "eth0"}}})
		if err == nil || !strings.Contains(err.Error(), "eth0") {
			t.Errorf("New = %v, want an error naming eth0", err)
		}
	})
}

func TestDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.PinPath != DefaultPinPath || o.Mark != defaultMark || o.RouteTable != defaultRouteTable ||
		o.RulePriority != defaultRulePriority || o.MaxRules != 250000 || o.MaxPrefixes != 100000 || o.Logger == nil {
		t.Errorf("defaults %+v", o)
	}
}
