package rulestore

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/zfw-go/zfw/internal/bpfobj"
	zmaps "github.com/zfw-go/zfw/internal/maps"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/internal/wire"
)

func memTable(t *testing.T) (*Table, *zmaps.Set) {
	t.Helper()
	set, err := zmaps.NewMemorySet(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	tbl := New(set, 0x5a460000)
	if err := tbl.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	return tbl, set
}

func mkRule(dst string, low, high uint16, action policy.Action) *policy.Rule {
	return &policy.Rule{Proto: policy.ProtoTCP, Dst: netip.MustParsePrefix(dst), PortLow: low, PortHigh: high, Action: action, TProxyPort: 7000, ServiceID: "svc", Intercept: true}
}

func mustChange(t *testing.T, tbl *Table, add []*policy.Rule, remove []uint32) {
	t.Helper()
	tbl.Assign(add)
	p, err := tbl.Plan(add, remove, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Apply(p); err != nil {
		t.Fatal(err)
	}
}

// snapshot is everything the policy maps hold, decoded.
type snapshot struct {
	prefixes map[policy.PrefixKey][]uint32 // rule ids in slot order
	lens     map[uint32][]uint8
	records  []uint32
}

func snap(t *testing.T, set *zmaps.Set) snapshot {
	t.Helper()
	s := snapshot{prefixes: map[policy.PrefixKey][]uint32{}, lens: map[uint32][]uint8{}}
	var k4 bpfobj.ZfwPrefixKey
	var v bpfobj.ZfwPrefixValue
	it := set.Prefix4.Iterate()
	for it.Next(&k4, &v) {
		key := policy.PrefixKey{Proto: k4.Proto, Prefix: netip.PrefixFrom(wire.AddrFrom([4]uint32{k4.Addr}, 4), int(k4.Len))}
		for i := range v.Count {
			var e bpfobj.ZfwRangeEntry
			if err := set.Ranges.Lookup(v.Start+i, &e); err != nil {
				t.Fatal(err)
			}
			s.prefixes[key] = append(s.prefixes[key], e.RuleId)
		}
	}
	var lk uint32
	var l bpfobj.ZfwPrefixLens
	it = set.PrefixLens.Iterate()
	for it.Next(&lk, &l) {
		s.lens[lk] = slices.Clone(l.Lens[:l.Count])
	}
	var id uint32
	var rec bpfobj.ZfwRuleRecord
	it = set.RuleStore.Iterate()
	for it.Next(&id, &rec) {
		s.records = append(s.records, id)
	}
	slices.Sort(s.records)
	return s
}

func TestTableLayoutFollowsPrecedence(t *testing.T) {
	tbl, set := memTable(t)
	a := mkRule("10.9.0.0/24", 80, 80, policy.ActionTProxy)
	b := mkRule("10.9.0.0/24", 1, 100, policy.ActionPass)
	b.Src = netip.MustParsePrefix("192.168.0.0/16")
	c := mkRule("10.9.0.5/32", 22, 22, policy.ActionDeny)
	mustChange(t, tbl, []*policy.Rule{a, b, c}, nil)
	s := snap(t, set)
	key := policy.PrefixKey{Proto: policy.ProtoTCP, Prefix: netip.MustParsePrefix("10.9.0.0/24")}
	if got := s.prefixes[key]; !slices.Equal(got, []uint32{b.ID, a.ID}) {
		t.Errorf("block = %v, want source-specific rule first: [%d %d]", got, b.ID, a.ID)
	}
	lk := policy.LensKey{Family: 4, Proto: policy.ProtoTCP}.MapKey()
	if got := s.lens[lk]; !slices.Equal(got, []uint8{32, 24}) {
		t.Errorf("lengths = %v, want [32 24]", got)
	}
	// Removing the /32 drops its length.
	mustChange(t, tbl, nil, []uint32{c.ID})
	if got := snap(t, set).lens[lk]; !slices.Equal(got, []uint8{24}) {
		t.Errorf("lengths after removal = %v, want [24]", got)
	}
	mustChange(t, tbl, nil, []uint32{a.ID, b.ID})
	s = snap(t, set)
	if len(s.prefixes) != 0 || len(s.lens) != 0 || len(s.records) != 0 {
		t.Errorf("maps not empty after removing everything: %+v", s)
	}
}

func TestTableAdoptsWhatAnotherTableWrote(t *testing.T) {
	tbl, set := memTable(t)
	var rules []*policy.Rule
	for _, d := range []string{"10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "fd00::/64"} {
		rules = append(rules, mkRule(d, 80, 90, policy.ActionTProxy))
	}
	rules[1].Interfaces = []int{3, 4}
	mustChange(t, tbl, rules, nil)
	before := snap(t, set)

	adopted := New(set, 0x5a460000)
	if err := adopted.Load(false); err != nil {
		t.Fatal(err)
	}
	if adopted.Generation != tbl.Generation {
		t.Errorf("generation %d, want %d (an intact dataplane needs no repair)", adopted.Generation, tbl.Generation)
	}
	for id, r := range tbl.Rules {
		got := adopted.Rules[id]
		if got == nil || got.Dst != r.Dst || got.ServiceID != r.ServiceID || !slices.Equal(got.Interfaces, r.Interfaces) || got.Seq != r.Seq {
			t.Errorf("rule %d: adopted %+v, want %+v", id, got, r)
		}
	}
	if adopted.Prefixes != tbl.Prefixes || adopted.nextID != tbl.nextID {
		t.Errorf("adopted counters %v/%d, want %v/%d", adopted.Prefixes, adopted.nextID, tbl.Prefixes, tbl.nextID)
	}
	// New changes on the adopted table must not reuse live slots.
	extra := mkRule("10.5.0.0/16", 1, 2, policy.ActionDeny)
	mustChange(t, adopted, []*policy.Rule{extra}, nil)
	after := snap(t, set)
	for k, ids := range before.prefixes {
		if !slices.Equal(after.prefixes[k], ids) {
			t.Errorf("prefix %v changed from %v to %v", k, ids, after.prefixes[k])
		}
	}
}

func TestTableRepairsAHalfWrittenDataplane(t *testing.T) {
	tbl, set := memTable(t)
	a := mkRule("10.1.0.0/16", 80, 90, policy.ActionTProxy)
	b := mkRule("10.2.0.0/16", 80, 90, policy.ActionTProxy)
	mustChange(t, tbl, []*policy.Rule{a, b}, nil)
	// A process died after writing b's record but before its prefix key
	// and its length; and left a prefix key whose rule record is gone.
	kb := wire.PrefixKey4(policy.KeyOf(b))
	if err := set.Prefix4.Delete(&kb); err != nil {
		t.Fatal(err)
	}
	stray := wire.PrefixKey4(policy.PrefixKey{Proto: policy.ProtoTCP, Prefix: netip.MustParsePrefix("10.3.3.0/24")})
	if err := set.Prefix4.Update(&stray, &bpfobj.ZfwPrefixValue{Start: 5000, Count: 1}, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	adopted := New(set, 0x5a460000)
	if err := adopted.Load(false); err != nil {
		t.Fatal(err)
	}
	s := snap(t, set)
	if got := s.prefixes[policy.KeyOf(b)]; !slices.Equal(got, []uint32{b.ID}) {
		t.Errorf("missing prefix not restored: %v", got)
	}
	if _, ok := s.prefixes[policy.PrefixKey{Proto: policy.ProtoTCP, Prefix: netip.MustParsePrefix("10.3.3.0/24")}]; ok {
		t.Error("stray prefix key not removed")
	}
	if lk := (policy.LensKey{Family: 4, Proto: policy.ProtoTCP}).MapKey(); !slices.Equal(s.lens[lk], []uint8{16}) {
		t.Errorf("lengths = %v, want [16]", s.lens[lk])
	}
}

// failingMap fails one update, after a number of successes, as a map
// that fills up mid-change does; the updates of the rollback succeed.
type failingMap struct {
	zmaps.Map
	left int
}

func (f *failingMap) Update(key, value any, flags ebpf.MapUpdateFlags) error {
	f.left--
	if f.left == -1 {
		return errors.New("injected failure")
	}
	return f.Map.Update(key, value, flags)
}

func TestTableRollsBackAFailedChange(t *testing.T) {
	// Fail somewhere in the record or the prefix writes of a change
	// that adds two prefixes and replaces one.
	for _, m := range []struct {
		name string
		of   func(*zmaps.Set) *zmaps.Map
	}{
		{"rule_store_map", func(s *zmaps.Set) *zmaps.Map { return &s.RuleStore }},
		{"prefix4_map", func(s *zmaps.Set) *zmaps.Map { return &s.Prefix4 }},
	} {
		t.Run(m.name, func(t *testing.T) { testRollbackOf(t, m.of) })
	}
}

func testRollbackOf(t *testing.T, of func(*zmaps.Set) *zmaps.Map) {
	for failAfter := 0; failAfter < 6; failAfter++ {
		tbl, set := memTable(t)
		keep := mkRule("10.1.0.0/16", 80, 90, policy.ActionTProxy)
		mustChange(t, tbl, []*policy.Rule{keep}, nil)
		before := snap(t, set)

		failing := of(set)
		real := *failing
		*failing = &failingMap{Map: real, left: failAfter}
		add := []*policy.Rule{mkRule("10.2.0.0/24", 1, 2, policy.ActionDeny), mkRule("10.3.0.0/28", 1, 2, policy.ActionDeny), mkRule("10.1.0.0/16", 100, 200, policy.ActionPass)}
		tbl.Assign(add)
		p, err := tbl.Plan(add, []uint32{keep.ID}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = tbl.Apply(p)
		*failing = real
		if err == nil {
			continue // the failure point was past the last write
		}
		after := snap(t, set)
		if len(after.prefixes) != len(before.prefixes) || !slices.Equal(after.records, before.records) {
			t.Errorf("fail after %d: maps changed: before %+v after %+v", failAfter, before, after)
		}
		for k, ids := range before.prefixes {
			if !slices.Equal(after.prefixes[k], ids) {
				t.Errorf("fail after %d: prefix %v now %v, want %v", failAfter, k, after.prefixes[k], ids)
			}
		}
		if len(tbl.Rules) != 1 || tbl.Rules[keep.ID] == nil {
			t.Errorf("fail after %d: table state changed", failAfter)
		}
	}
}

func TestSlotsReuseAfterQuarantine(t *testing.T) {
	s := newSlots(10)
	a, _ := s.alloc(4)
	b, _ := s.alloc(4)
	if _, ok := s.alloc(4); ok {
		t.Fatal("allocated past capacity")
	}
	s.retire(a, 4)
	if _, ok := s.alloc(4); ok {
		t.Fatal("quarantined run reused in the same round")
	}
	s.release()
	if got, ok := s.alloc(4); !ok || got != a {
		t.Fatalf("alloc after release = %d %v, want %d", got, ok, a)
	}
	s.retire(a, 4)
	s.retire(b, 4)
	s.release()
	if got, ok := s.alloc(10); !ok || got != 0 {
		t.Fatalf("coalesced alloc = %d %v, want 0 true", got, ok)
	}
	s2 := newSlots(100)
	if !s2.reserve(10, 5) || s2.reserve(12, 2) {
		t.Fatal("reserve of a used run must fail")
	}
	if got, _ := s2.alloc(10); got != 0 {
		t.Fatalf("first fit = %d, want 0", got)
	}
	if got, _ := s2.alloc(1); got != 15 {
		t.Fatalf("next fit = %d, want 15", got)
	}
}

// tproxy_extension_map names one service per listener port: the first
// to claim it, and when that one leaves, the one that came next of
// those left, whatever the order of their ids; the entry goes with the
// last service. The in-memory copy and the map agree at every step.
func TestListenerPortOwnerIsTheFirstServiceLeft(t *testing.T) {
	tbl, set := memTable(t)
	ids := map[string][]uint32{}
	register := func(svc string, dsts ...string) {
		var rules []*policy.Rule
		for _, d := range dsts {
			r := mkRule(d, 80, 80, policy.ActionTProxy)
			r.ServiceID = svc
			rules = append(rules, r)
		}
		mustChange(t, tbl, rules, nil)
		for _, r := range rules {
			ids[svc] = append(ids[svc], r.ID)
		}
	}
	unregister := func(svc string) {
		mustChange(t, tbl, nil, ids[svc])
		delete(ids, svc)
	}
	owner := func() string {
		t.Helper()
		var v bpfobj.ZfwServiceId
		err := set.TProxyExt.Lookup(wire.TProxyExtKey(7000, policy.ProtoTCP), &v)
		e := tbl.ext[extKey{7000, policy.ProtoTCP}]
		if err != nil {
			if e != nil {
				t.Fatalf("no map entry, but the table says %q", e.owner)
			}
			return ""
		}
		got := wire.ServiceIDFrom(&v)
		if e == nil || e.owner != got {
			t.Fatalf("map says %q, table %+v", got, e)
		}
		return got
	}
	steps := []struct {
		do   func()
		want string
	}{
		{func() { register("zeta", "10.0.0.1/32", "10.0.0.2/32") }, "zeta"},
		{func() { register("alpha", "10.0.0.3/32") }, "zeta"},
		{func() { register("mid", "10.0.0.4/32") }, "zeta"},
		{func() { unregister("alpha") }, "zeta"},
		{func() { unregister("zeta") }, "mid"},
		{func() { register("alpha", "10.0.0.5/32") }, "mid"},
		{func() { unregister("mid") }, "alpha"},
		{func() { unregister("alpha") }, ""},
		{func() { register("beta", "10.0.0.6/32") }, "beta"},
	}
	for i, st := range steps {
		st.do()
		if got := owner(); got != st.want {
			t.Fatalf("step %d: owner %q, want %q", i, got, st.want)
		}
	}
	// Churn of services that are not the owner does not grow the order
	// the table keeps.
	for i := range 1000 {
		register("churn", fmt.Sprintf("10.1.%d.%d/32", i/256, i%256))
		unregister("churn")
	}
	if e := tbl.ext[extKey{7000, policy.ProtoTCP}]; len(e.order) > 2*len(e.holders)+8 {
		t.Errorf("order holds %d ids for %d services", len(e.order), len(e.holders))
	}
	if got := owner(); got != "beta" {
		t.Errorf("owner after churn %q, want beta", got)
	}
}

// Planning a change to a listener port shared by many services costs
// what the change touches: it allocates no more with 5,000 services on
// the port than with 5 (Register one by one would be quadratic).
func TestPlanningASharedPortChangeDoesNotGrowWithItsServices(t *testing.T) {
	allocs := func(services int) float64 {
		tbl, _ := memTable(t)
		for i := range services {
			r := mkRule(fmt.Sprintf("10.%d.%d.%d/32", i>>16, (i>>8)&255, i&255), 80, 80, policy.ActionTProxy)
			r.ServiceID = fmt.Sprintf("svc%05d", i)
			mustChange(t, tbl, []*policy.Rule{r}, nil)
		}
		r := mkRule("10.255.0.1/32", 80, 80, policy.ActionTProxy)
		r.ServiceID = "new"
		tbl.Assign([]*policy.Rule{r})
		return testing.AllocsPerRun(20, func() {
			tbl.planExt([]*policy.Rule{r}, nil)
		})
	}
	few, many := allocs(5), allocs(5000)
	if many > few {
		t.Errorf("planning one service's rule allocates %.0f times with 5,000 services on its port, %.0f with 5", many, few)
	}
}
