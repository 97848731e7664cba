package intercept

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func service(id string) Intercept {
	ic := validIntercept()
	ic.ServiceID = id
	return ic
}

func ids(ics []Intercept) string {
	var out []string
	for _, ic := range ics {
		out = append(out, ic.ServiceID)
	}
	return strings.Join(out, ",")
}

func changedIDs(cs []Change) string {
	var out []string
	for _, c := range cs {
		if c.Old.ServiceID != c.New.ServiceID {
			out = append(out, c.Old.ServiceID+"->"+c.New.ServiceID)
			continue
		}
		out = append(out, c.New.ServiceID)
	}
	return strings.Join(out, ",")
}

func TestDiff(t *testing.T) {
	reordered := service("b")
	reordered.Protocols = []Protocol{UDP, TCP}
	reordered.Addresses = prefixes("fd00::/64", "10.9.0.0/24")
	reordered.Ports = []PortRange{{443, 443}, {80, 80}}
	b := service("b")
	b.Protocols = []Protocol{TCP, UDP, TCP}
	b.Addresses = prefixes("10.9.0.7/24", "fd00::/64")
	b.Ports = []PortRange{{80, 80}, {443, 443}}

	movedPort := service("c")
	movedPort.TProxyPort = 7001
	newAddress := service("d")
	newAddress.Addresses = prefixes("10.10.0.0/24")

	cases := []struct {
		name                    string
		current, desired        []Intercept
		added, removed, changed string
	}{
		{"both empty", nil, nil, "", "", ""},
		{"everything added", nil, []Intercept{service("b"), service("a")}, "a,b", "", ""},
		{"everything removed", []Intercept{service("b"), service("a")}, nil, "", "a,b", ""},
		{"unchanged", []Intercept{service("a"), service("b")}, []Intercept{service("b"), service("a")}, "", "", ""},
		{"unchanged but reordered, duplicated and unmasked", []Intercept{b}, []Intercept{reordered}, "", "", ""},
		{"add, remove and change at once",
			[]Intercept{service("d"), service("c"), service("x"), service("a")},
			[]Intercept{service("a"), newAddress, service("e"), movedPort, service("f")},
			"e,f", "x", "c,d"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Diff(tc.current, tc.desired)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(d.Added); got != tc.added {
				t.Errorf("added %q, want %q", got, tc.added)
			}
			if got := ids(d.Removed); got != tc.removed {
				t.Errorf("removed %q, want %q", got, tc.removed)
			}
			if got := changedIDs(d.Changed); got != tc.changed {
				t.Errorf("changed %q, want %q", got, tc.changed)
			}
			if empty := tc.added == "" && tc.removed == "" && tc.changed == ""; d.Empty() != empty {
				t.Errorf("Empty() = %v, want %v", d.Empty(), empty)
			}
		})
	}
}

func TestDiffChangeCarriesBothVersions(t *testing.T) {
	old := service("svc")
	updated := service("svc")
	updated.Addresses = prefixes("10.20.0.0/16")
	d, err := Diff([]Intercept{old}, []Intercept{updated})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Changed) != 1 {
		t.Fatalf("changes %+v, want one", d)
	}
	c := d.Changed[0]
	if !c.Old.Equal(old) || !c.New.Equal(updated) {
		t.Errorf("change %+v, want old %v and new %v", c, old.Addresses, updated.Addresses)
	}
	if c.New.Addresses[0] != netip.MustParsePrefix("10.20.0.0/16") {
		t.Errorf("new addresses %v", c.New.Addresses)
	}
}

func TestDiffRejectsDuplicateServiceIDs(t *testing.T) {
	cases := []struct {
		name             string
		current, desired []Intercept
		says             string
	}{
		{"in desired", nil, []Intercept{service("a"), service("b"), service("a")}, `intercept "a": desired[0] and desired[2]: duplicate service id`},
		{"in desired, even when equal to current", []Intercept{service("a")}, []Intercept{service("a"), service("a")}, "desired[0] and desired[1]"},
		{"in current", []Intercept{service("a"), service("a")}, nil, "current[0] and current[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Diff(tc.current, tc.desired)
			if !errors.Is(err, ErrDuplicateServiceID) {
				t.Fatalf("Diff() error = %v, want ErrDuplicateServiceID", err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if !d.Empty() {
				t.Errorf("Diff() = %+v with an error, want an empty Delta", d)
			}
		})
	}
}

func TestDiffDoesNotModifyItsInputs(t *testing.T) {
	current := []Intercept{service("b"), service("a")}
	desired := []Intercept{service("c")}
	desired[0].Protocols = []Protocol{UDP, TCP}
	if _, err := Diff(current, desired); err != nil {
		t.Fatal(err)
	}
	if current[0].ServiceID != "b" || desired[0].Protocols[0] != UDP {
		t.Error("Diff reordered its inputs")
	}
}
