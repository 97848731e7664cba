package rulestore

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/cilium/ebpf"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/internal/wire"
	"github.com/zfw-go/zfw/zfw/ddos"
)

// Load rebuilds the table from maps that a previous process kept, then
// repairs any prefix key whose block does not hold exactly the rules the
// stored records say it should (a process that died mid-change). With
// keepSettings the stored mark, timeouts and limits replace the table's,
// so that the changes load writes leave them as they were.
func (t *Table) Load(keepSettings bool) error {
	var cfg bpfobj.ZfwConfig
	if err := t.Maps.Config.Lookup(uint32(0), &cfg); err != nil {
		return fmt.Errorf("config_map: lookup: %w", err)
	}
	t.Generation = cfg.Generation
	t.cacheEpoch = cfg.CacheEpoch
	// ddos_dport_map survives with the maps, and so must its count.
	t.ProtectedPorts = cfg.ProtectedPorts
	t.AllowedSources = cfg.AllowedSources
	if keepSettings {
		t.Mark = cfg.Mark
		t.Timeouts = Timeouts{
			TCPEstablished: time.Duration(cfg.TcpEstablishedNs),
			TCPTransitory:  time.Duration(cfg.TcpTransitoryNs),
			UDP:            time.Duration(cfg.UdpNs),
			ICMPEcho:       time.Duration(cfg.IcmpEchoNs),
		}
		t.EventsPerSec = cfg.EventsPerSec
		t.SYNFlood = ddos.SYNFlood{SYNsPerSecond: int(cfg.SynPerSec), BanDuration: time.Duration(cfg.BanNs)}
	}

	var (
		id  uint32
		rec bpfobj.ZfwRuleRecord
	)
	it := t.Maps.RuleStore.Iterate()
	for it.Next(&id, &rec) {
		r := wire.RuleFrom(id, &rec)
		t.Rules[id] = &r
		t.nextID = max(t.nextID, id+1)
		t.nextSeq = max(t.nextSeq, r.Seq+1)
		if steersToPort(&r) {
			k := extKey{r.TProxyPort, r.Proto}
			e := t.ext[k]
			if e == nil {
				e = &extEntry{holders: make(map[string]int)}
				t.ext[k] = e
			}
			e.holders[r.ServiceID]++
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("rule_store_map: iterate: %w", err)
	}
	for k, e := range t.ext {
		var v bpfobj.ZfwServiceId
		if err := t.Maps.TProxyExt.Lookup(wire.TProxyExtKey(k.port, k.proto), &v); err == nil {
			e.owner = wire.ServiceIDFrom(&v)
		}
		// The order the services came in is not kept in the maps: the
		// owner first, then by id.
		e.order = slices.Sorted(maps.Keys(e.holders))
		if e.holders[e.owner] > 0 {
			e.order = slices.Insert(slices.DeleteFunc(e.order, func(id string) bool { return id == e.owner }), 0, e.owner)
		}
		if owner := e.order[0]; owner != e.owner {
			// Missing or stale entry: write the right one.
			v := wire.ServiceID(owner)
			if err := t.Maps.TProxyExt.Update(wire.TProxyExtKey(k.port, k.proto), &v, ebpf.UpdateAny); err != nil {
				return fmt.Errorf("tproxy_extension_map: update: %w", err)
			}
			e.owner = owner
		}
	}

	var repair []policy.PrefixKey
	adopt := func(k policy.PrefixKey, v bpfobj.ZfwPrefixValue) error {
		b := &block{start: v.Start, count: v.Count}
		for i := range v.Count {
			var e bpfobj.ZfwRangeEntry
			if err := t.Maps.Ranges.Lookup(v.Start+i, &e); err != nil {
				return fmt.Errorf("range_map: lookup %d: %w", v.Start+i, err)
			}
			b.ids = append(b.ids, e.RuleId)
		}
		if !t.slots.reserve(v.Start, v.Count) {
			repair = append(repair, k) // overlaps another block: rewrite it
			b.count = 0
		}
		t.blocks[k] = b
		t.Prefixes[k.Slot()]++
		t.countLen(k, +1)
		return nil
	}
	for slot := range t.Prefixes {
		name, m := t.prefixMap(slot)
		egress := slot >= 2
		var v bpfobj.ZfwPrefixValue
		if slot%2 == 0 {
			var k4 bpfobj.ZfwPrefixKey
			it := m.Iterate()
			for it.Next(&k4, &v) {
				k := policy.PrefixKey{Egress: egress, Proto: k4.Proto, Prefix: netip.PrefixFrom(wire.AddrFrom([4]uint32{k4.Addr}, 4), int(k4.Len))}
				if err := adopt(k, v); err != nil {
					return err
				}
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("%s: iterate: %w", name, err)
			}
			continue
		}
		var k6 bpfobj.ZfwPrefix6Key
		it := m.Iterate()
		for it.Next(&k6, &v) {
			k := policy.PrefixKey{Egress: egress, Proto: k6.Proto, Prefix: netip.PrefixFrom(wire.AddrFrom(k6.Addr, 6), int(k6.Len))}
			if err := adopt(k, v); err != nil {
				return err
			}
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("%s: iterate: %w", name, err)
		}
	}

	var (
		lk   uint32
		lens bpfobj.ZfwPrefixLens
	)
	it = t.Maps.PrefixLens.Iterate()
	for it.Next(&lk, &lens) {
		key := policy.LensKeyFrom(lk)
		t.lens[key] = slices.Clone(lens.Lens[:min(int(lens.Count), len(lens.Lens))])
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("prefix_len_map: iterate: %w", err)
	}

	// Compare with what the records call for.
	want := make(map[policy.PrefixKey][]*policy.Rule)
	for _, r := range t.Rules {
		k := policy.KeyOf(r)
		want[k] = append(want[k], r)
	}
	for k, list := range want {
		policy.SortBlock(list)
		ids := make([]uint32, len(list))
		for i, r := range list {
			ids[i] = r.ID
		}
		if b := t.blocks[k]; b == nil || !slices.Equal(b.ids, ids) {
			repair = append(repair, k)
		}
	}
	for k := range t.blocks {
		if _, ok := want[k]; !ok {
			repair = append(repair, k)
		}
	}
	// Length lists are recomputed whenever a repaired key comes or goes;
	// check them against the keys as well.
	var keys []policy.PrefixKey
	for k := range want {
		keys = append(keys, k)
	}
	wantLens := policy.Lengths(keys)
	lensOK := len(wantLens) == len(t.lens)
	for lk, l := range wantLens {
		lensOK = lensOK && slices.Equal(t.lens[lk], l)
	}
	if len(repair) == 0 && lensOK {
		return nil
	}
	p, err := t.Plan(nil, nil, repair)
	if err != nil {
		return fmt.Errorf("repair adopted dataplane: %w", err)
	}
	if !lensOK {
		for lk, l := range wantLens {
			p.lens[lk] = l
		}
		for lk := range t.lens {
			if _, ok := wantLens[lk]; !ok {
				p.lens[lk] = nil
			}
		}
	}
	if err := t.Apply(p); err != nil {
		return fmt.Errorf("repair adopted dataplane: %w", err)
	}
	return nil
}
