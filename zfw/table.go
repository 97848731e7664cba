package zfw

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/zfw-go/zfw/internal/bpfobj"
	zmaps "github.com/zfw-go/zfw/internal/maps"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/internal/wire"
	"github.com/zfw-go/zfw/zfw/ddos"
)

// block is the range_map run that holds one prefix key's rules.
type block struct {
	start, count uint32
	ids          []uint32 // rule ids in precedence order
}

type extKey struct {
	port  uint16
	proto uint8
}

// extEntry tracks the services whose rules steer to one listener port.
// tproxy_extension_map shows one of them, the owner: the first to claim
// the port, or when it leaves, the one that came next of those left.
// Many services may share a port (OpenZiti's tunnelers put every
// service on one), so a change costs what it touches, not what the port
// holds.
type extEntry struct {
	owner   string
	holders map[string]int // service id -> rules
	// order holds the services in the order they came to the port; ids
	// that have left stay until they reach the front or order is
	// compacted.
	order []string
}

// extChange is what one change does to a listener port.
type extChange struct {
	delta map[string]int // service id -> rules added (or, < 0, removed)
	// newcomers: services that hold the port after the change and not
	// before, in the order they came.
	newcomers []string
	owner     string // after the change; "" when no service holds it
}

// held is how many rules service id has on the port after c.
func (e *extEntry) held(c *extChange, id string) int {
	n := c.delta[id]
	if e != nil {
		n += e.holders[id]
	}
	return n
}

// nextOwner is the port's owner after c: the owner while it holds the
// port, else the first service in order (then among the newcomers) that
// holds it. e may be nil (a port no service held).
func (e *extEntry) nextOwner(c *extChange) string {
	var order []string
	if e != nil {
		if e.held(c, e.owner) > 0 {
			return e.owner
		}
		order = e.order
	}
	for _, ids := range [][]string{order, c.newcomers} {
		for _, id := range ids {
			if e.held(c, id) > 0 {
				return id
			}
		}
	}
	return ""
}

// apply makes e what it is after c, whose owner is c.owner.
func (e *extEntry) apply(c *extChange) {
	for id, d := range c.delta {
		if n := e.holders[id] + d; n > 0 {
			e.holders[id] = n
		} else {
			delete(e.holders, id)
		}
	}
	e.order = append(e.order, c.newcomers...)
	e.owner = c.owner
	// Services that left go from the front at once (so the next search
	// for an owner starts at a holder), and from anywhere once they
	// are half of order.
	for len(e.order) > 0 && e.holders[e.order[0]] == 0 {
		e.order = e.order[1:]
	}
	if len(e.order) > 2*len(e.holders)+8 {
		seen := make(map[string]bool, len(e.holders))
		kept := make([]string, 0, len(e.holders))
		for _, id := range e.order {
			if e.holders[id] > 0 && !seen[id] {
				seen[id] = true
				kept = append(kept, id)
			}
		}
		e.order = kept
	}
}

// table is the control plane's authoritative copy of what the maps hold,
// and the only writer of the policy maps. Callers serialise access.
type table struct {
	m          *zmaps.Set
	rules      map[uint32]*policy.Rule
	blocks     map[policy.PrefixKey]*block
	lens       map[policy.LensKey][]uint8
	lenCount   map[policy.LensKey]map[uint8]int // keys per prefix length
	prefixes   [4]int                           // keys per prefix map (PrefixKey.Slot)
	ext        map[extKey]*extEntry
	slots      *slots
	nextID     uint32
	nextSeq    uint64
	mark       uint32
	generation uint32
	// cacheEpoch voids the dataplane's per-CPU flow caches when bumped
	// (config.cache_epoch); ncpus is how many CPUs they span.
	cacheEpoch uint32
	ncpus      uint32
	timeouts   Timeouts
	// eventsPerSec is the per-CPU event rate limit.
	eventsPerSec uint32
	synFlood     ddos.SYNFlood
	// protectedPorts counts ddos_dport_map's entries.
	protectedPorts uint32
	// allowedSources counts ddos_allow_map's entries.
	allowedSources uint32
}

func newTable(m *zmaps.Set, mark uint32) *table {
	ncpus, err := ebpf.PossibleCPU()
	if err != nil {
		ncpus = runtime.NumCPU() // the flow cache is cleared on these at least
	}
	return &table{
		m:        m,
		rules:    make(map[uint32]*policy.Rule),
		blocks:   make(map[policy.PrefixKey]*block),
		lens:     make(map[policy.LensKey][]uint8),
		lenCount: make(map[policy.LensKey]map[uint8]int),
		ext:      make(map[extKey]*extEntry),
		slots:    newSlots(m.Ranges.MaxEntries()),
		nextID:   1,
		nextSeq:  1,
		mark:     mark,
		ncpus:    uint32(ncpus),
	}
}

// undoLog collects the inverse of every map write of one change, so a
// change that fails half way leaves the maps as they were.
type undoLog []func() error

func (u *undoLog) push(f func() error) { *u = append(*u, f) }

func (u undoLog) run() error {
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// put writes key=value, recording how to restore the previous content.
func put(u *undoLog, m zmaps.Map, name string, key, value, old any, existed bool) error {
	if err := m.Update(key, value, ebpf.UpdateAny); err != nil {
		return mapError(name, err)
	}
	u.push(func() error {
		if existed {
			return m.Update(key, old, ebpf.UpdateAny)
		}
		return m.Delete(key)
	})
	return nil
}

// del deletes key, recording how to put old back.
func del(u *undoLog, m zmaps.Map, name string, key, old any) error {
	if err := m.Delete(key); err != nil && !errors.Is(err, zmaps.ErrKeyNotExist) {
		return fmt.Errorf("%s: delete: %w", name, err)
	}
	u.push(func() error { return m.Update(key, old, ebpf.UpdateAny) })
	return nil
}

func mapError(name string, err error) error {
	if errors.Is(err, zmaps.ErrFull) {
		return &LimitError{Limit: name, Err: err}
	}
	return fmt.Errorf("%s: update: %w", name, err)
}

// plan is one change worked out in full before any map is touched.
type plan struct {
	add      []*policy.Rule
	remove   []uint32
	blocks   map[policy.PrefixKey][]uint32 // new id order per affected key; empty = key goes
	lens     map[policy.LensKey][]uint8    // new length lists that differ
	prefixes [4]int
	ext      map[extKey]*extChange // what happens to the listener ports touched
}

// assign gives new rules their ids and insertion order.
func (t *table) assign(rules []*policy.Rule) {
	for _, r := range rules {
		r.ID = t.nextID
		t.nextID++
		r.Seq = t.nextSeq
		t.nextSeq++
	}
}

// plan validates a change against every limit and works out the new
// layout of each prefix key it touches. extra lists keys to rewrite even
// if their rules did not change (repairing an adopted dataplane).
func (t *table) plan(add []*policy.Rule, remove []uint32, extra []policy.PrefixKey) (*plan, error) {
	p := &plan{
		add:      add,
		remove:   remove,
		blocks:   make(map[policy.PrefixKey][]uint32),
		lens:     make(map[policy.LensKey][]uint8),
		prefixes: t.prefixes,
	}
	removed := make(map[uint32]bool, len(remove))
	for _, id := range remove {
		removed[id] = true
	}
	added := make(map[uint32]*policy.Rule, len(add))
	affected := make(map[policy.PrefixKey]bool)
	for _, k := range extra {
		affected[k] = true
	}
	for _, id := range remove {
		if r := t.rules[id]; r != nil {
			affected[policy.KeyOf(r)] = true
		}
	}
	for _, r := range add {
		added[r.ID] = r
		affected[policy.KeyOf(r)] = true
	}
	if n, limit := len(t.rules)-len(remove)+len(add), int(t.m.Ranges.MaxEntries()); n > limit {
		return nil, &LimitError{Limit: "range_map", Max: limit, Have: n}
	}

	byKey := make(map[policy.PrefixKey][]*policy.Rule)
	for k := range affected {
		var list []*policy.Rule
		if b := t.blocks[k]; b != nil {
			for _, id := range b.ids {
				if !removed[id] && t.rules[id] != nil {
					list = append(list, t.rules[id])
				}
			}
		}
		byKey[k] = list
	}
	if len(extra) > 0 {
		// Keys being repaired take their rules from the records, not
		// from a block that may be missing or wrong.
		for _, k := range extra {
			byKey[k] = nil
		}
		for _, r := range t.rules {
			if k := policy.KeyOf(r); !removed[r.ID] && slices.Contains(extra, k) {
				byKey[k] = append(byKey[k], r)
			}
		}
	}
	for _, r := range add {
		k := policy.KeyOf(r)
		byKey[k] = append(byKey[k], r)
	}
	lensDelta := make(map[policy.LensKey]map[uint8]int)
	bump := func(k policy.PrefixKey, d int) {
		lk := policy.LensKeyOf(k)
		if lensDelta[lk] == nil {
			lensDelta[lk] = make(map[uint8]int)
		}
		lensDelta[lk][uint8(k.Prefix.Bits())] += d
	}
	for k, list := range byKey {
		if len(list) > policy.MaxRangesPerPrefix {
			return nil, &LimitError{
				Limit: fmt.Sprintf("rules per prefix (%s %s)", protoName(k.Proto), k.Prefix),
				Max:   policy.MaxRangesPerPrefix, Have: len(list),
			}
		}
		policy.SortBlock(list)
		ids := make([]uint32, len(list))
		for i, r := range list {
			ids[i] = r.ID
		}
		p.blocks[k] = ids
		fam := k.Slot()
		_, had := t.blocks[k]
		switch {
		case had && len(ids) == 0:
			p.prefixes[fam]--
			bump(k, -1)
		case !had && len(ids) > 0:
			p.prefixes[fam]++
			bump(k, +1)
		}
	}
	for slot, n := range p.prefixes {
		name, m := t.prefixMap(slot)
		if limit := int(m.MaxEntries()); n > limit {
			return nil, &LimitError{Limit: name, Max: limit, Have: n}
		}
	}
	// Length lists change only where a key comes or goes; work them out
	// from the per-length key counts.
	for lk, delta := range lensDelta {
		counts := maps.Clone(t.lenCount[lk])
		if counts == nil {
			counts = make(map[uint8]int)
		}
		for l, d := range delta {
			counts[l] += d
		}
		var lens []uint8
		for l, n := range counts {
			if n > 0 {
				lens = append(lens, l)
			}
		}
		slices.SortFunc(lens, func(a, b uint8) int { return int(b) - int(a) })
		if !slices.Equal(lens, t.lens[lk]) {
			p.lens[lk] = lens
		}
	}

	p.ext = t.planExt(add, remove)
	return p, nil
}

// apply writes a plan make-before-break: records and rule blocks first,
// then the prefix keys that point at them, then the length lists; removal
// runs the other way. Any failure undoes what was written.
func (t *table) apply(p *plan) (err error) {
	var u undoLog
	var allocated []extent
	defer func() {
		if err == nil {
			return
		}
		for _, e := range allocated {
			t.slots.undoAlloc(e.start, e.count)
		}
		if uerr := u.run(); uerr != nil {
			err = fmt.Errorf("%w (rollback incomplete: %v)", err, uerr)
		}
	}()
	t.slots.release()

	for _, r := range p.add {
		rec := wire.Record(r)
		if err := put(&u, t.m.RuleStore, "rule_store_map", r.ID, &rec, nil, false); err != nil {
			return err
		}
		if len(r.Interfaces) > 0 {
			l := wire.IfList(r)
			if err := put(&u, t.m.IfLists, "if_list_extension_map", r.ID, &l, nil, false); err != nil {
				return err
			}
		}
	}
	for k, e := range p.ext {
		if e.owner == "" {
			continue // removed below, after the rules that use it
		}
		key := wire.TProxyExtKey(k.port, k.proto)
		v := wire.ServiceID(e.owner)
		old := t.ext[k]
		if old != nil && old.owner == e.owner {
			continue
		}
		var oldV bpfobj.ZfwServiceId
		if old != nil {
			oldV = wire.ServiceID(old.owner)
		}
		if err := put(&u, t.m.TProxyExt, "tproxy_extension_map", key, &v, &oldV, old != nil); err != nil {
			return err
		}
	}
	added := make(map[uint32]*policy.Rule, len(p.add))
	for _, r := range p.add {
		added[r.ID] = r
	}
	rule := func(id uint32) *policy.Rule {
		if r := t.rules[id]; r != nil {
			return r
		}
		return added[id]
	}
	newBlocks := make(map[policy.PrefixKey]*block)
	for k, ids := range p.blocks {
		if len(ids) == 0 {
			continue
		}
		start, ok := t.slots.alloc(uint32(len(ids)))
		if !ok {
			return &LimitError{Limit: "range_map", Max: int(t.slots.capacity), Have: int(t.slots.used) + len(ids)}
		}
		allocated = append(allocated, extent{start, uint32(len(ids))})
		for i, id := range ids {
			e := wire.RangeEntry(rule(id))
			if err := t.m.Ranges.Update(start+uint32(i), &e, ebpf.UpdateAny); err != nil {
				return mapError("range_map", err)
			}
		}
		nb := &block{start: start, count: uint32(len(ids)), ids: ids}
		newBlocks[k] = nb
		if err := t.putPrefix(&u, k, nb); err != nil {
			return err
		}
	}
	for lk, lens := range p.lens {
		if err := t.putLens(&u, lk, lens); err != nil {
			return err
		}
	}
	for k, ids := range p.blocks {
		if len(ids) == 0 && t.blocks[k] != nil {
			if err := t.deletePrefix(&u, k); err != nil {
				return err
			}
		}
	}
	for _, id := range p.remove {
		r := t.rules[id]
		if r == nil {
			continue
		}
		rec := wire.Record(r)
		if err := del(&u, t.m.RuleStore, "rule_store_map", id, &rec); err != nil {
			return err
		}
		if len(r.Interfaces) > 0 {
			l := wire.IfList(r)
			if err := del(&u, t.m.IfLists, "if_list_extension_map", id, &l); err != nil {
				return err
			}
		}
	}
	for k, e := range p.ext {
		if old := t.ext[k]; e.owner == "" && old != nil {
			v := wire.ServiceID(old.owner)
			if err := del(&u, t.m.TProxyExt, "tproxy_extension_map", wire.TProxyExtKey(k.port, k.proto), &v); err != nil {
				return err
			}
		}
	}
	// Commit: cached verdicts of the old rules are void from here on.
	cfg := t.config(t.generation + 1)
	if err := t.m.Config.Update(uint32(0), &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("config_map: update: %w", err)
	}

	// The maps now hold the plan; make the in-memory copy match.
	t.generation++
	for k, ids := range p.blocks {
		old := t.blocks[k]
		if old != nil {
			t.slots.retire(old.start, old.count)
			delete(t.blocks, k)
		}
		if len(ids) > 0 {
			t.blocks[k] = newBlocks[k]
		}
		switch {
		case old == nil && len(ids) > 0:
			t.countLen(k, +1)
		case old != nil && len(ids) == 0:
			t.countLen(k, -1)
		}
	}
	maps.Copy(t.lens, p.lens)
	for lk, l := range p.lens {
		if len(l) == 0 {
			delete(t.lens, lk)
		}
	}
	t.prefixes = p.prefixes
	for _, id := range p.remove {
		delete(t.rules, id)
		// A removed rule's count goes with it; ids are not reused.
		t.m.RuleHits.Delete(id)
	}
	for _, r := range p.add {
		t.rules[r.ID] = r
	}
	for k, c := range p.ext {
		switch e := t.ext[k]; {
		case c.owner == "":
			delete(t.ext, k)
		case e == nil:
			e = &extEntry{holders: make(map[string]int)}
			e.apply(c)
			t.ext[k] = e
		default:
			e.apply(c)
		}
	}
	return nil
}

// countLen keeps lenCount in step with the keys in blocks.
func (t *table) countLen(k policy.PrefixKey, d int) {
	lk := policy.LensKeyOf(k)
	if t.lenCount[lk] == nil {
		t.lenCount[lk] = make(map[uint8]int)
	}
	l := uint8(k.Prefix.Bits())
	if t.lenCount[lk][l] += d; t.lenCount[lk][l] <= 0 {
		delete(t.lenCount[lk], l)
	}
}

// steersToPort reports whether r claims a listener port for a service.
func steersToPort(r *policy.Rule) bool {
	return r.ServiceID != "" && r.Action == policy.ActionTProxy
}

// planExt works out what a change does to every listener port it
// touches, and each one's owner after it.
func (t *table) planExt(add []*policy.Rule, remove []uint32) map[extKey]*extChange {
	out := make(map[extKey]*extChange)
	change := func(k extKey) *extChange {
		c := out[k]
		if c == nil {
			c = &extChange{delta: make(map[string]int)}
			out[k] = c
		}
		return c
	}
	for _, id := range remove {
		if r := t.rules[id]; r != nil && steersToPort(r) {
			change(extKey{r.TProxyPort, r.Proto}).delta[r.ServiceID]--
		}
	}
	for _, r := range add {
		if steersToPort(r) {
			k := extKey{r.TProxyPort, r.Proto}
			c := change(k)
			if t.ext[k].held(c, r.ServiceID) == 0 {
				c.newcomers = append(c.newcomers, r.ServiceID)
			}
			c.delta[r.ServiceID]++
		}
	}
	for k, c := range out {
		c.owner = t.ext[k].nextOwner(c)
	}
	return out
}

// prefixMap is the map of a PrefixKey.Slot, with its name.
func (t *table) prefixMap(slot int) (string, zmaps.Map) {
	switch slot {
	case 1:
		return "zt_tproxy6_map", t.m.Prefix6
	case 2:
		return "zt_egress_map", t.m.Egress4
	case 3:
		return "zt_egress6_map", t.m.Egress6
	}
	return "zt_tproxy_map", t.m.Prefix4
}

// prefixKey encodes k for its map.
func prefixKey(k policy.PrefixKey) any {
	if k.Family() == 4 {
		key := wire.PrefixKey4(k)
		return &key
	}
	key := wire.PrefixKey6(k)
	return &key
}

func (t *table) putPrefix(u *undoLog, k policy.PrefixKey, b *block) error {
	v := bpfobj.ZfwPrefixValue{Start: b.start, Count: b.count}
	old := t.blocks[k]
	var oldV bpfobj.ZfwPrefixValue
	if old != nil {
		oldV = bpfobj.ZfwPrefixValue{Start: old.start, Count: old.count}
	}
	name, m := t.prefixMap(k.Slot())
	return put(u, m, name, prefixKey(k), &v, &oldV, old != nil)
}

func (t *table) deletePrefix(u *undoLog, k policy.PrefixKey) error {
	old := t.blocks[k]
	oldV := bpfobj.ZfwPrefixValue{Start: old.start, Count: old.count}
	name, m := t.prefixMap(k.Slot())
	return del(u, m, name, prefixKey(k), &oldV)
}

func lensValue(lens []uint8) bpfobj.ZfwPrefixLens {
	var v bpfobj.ZfwPrefixLens
	v.Count = uint32(copy(v.Lens[:], lens))
	return v
}

func (t *table) putLens(u *undoLog, lk policy.LensKey, lens []uint8) error {
	old, existed := t.lens[lk]
	oldV := lensValue(old)
	if len(lens) == 0 {
		if !existed {
			return nil
		}
		return del(u, t.m.PrefixLens, "prefix_len_map", lk.MapKey(), &oldV)
	}
	v := lensValue(lens)
	return put(u, t.m.PrefixLens, "prefix_len_map", lk.MapKey(), &v, &oldV, existed)
}

func protoName(p uint8) string {
	switch p {
	case policy.ProtoTCP:
		return "tcp"
	case policy.ProtoUDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", p)
}
