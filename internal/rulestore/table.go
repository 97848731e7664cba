// Package rulestore is the control plane's copy of the policy maps and
// their one writer. A Table plans every change in full before it touches
// a map (ids, the range_map run of each prefix key, prefix-length lists,
// the listener port of each steered service, every capacity), then
// writes it make-before-break so that no packet meets a half-made rule
// set, and undoes what it wrote when a write fails. Load rebuilds a
// Table from maps a previous process kept and repairs what a process
// that died mid-change left. Package zfw holds one Table per Firewall
// and serialises access to it.
package rulestore

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"time"

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

// Table is the control plane's authoritative copy of what the policy
// maps hold, and their only writer: it plans each change against every
// limit, then writes it make-before-break, undoing what it wrote when a
// write fails. It also writes config_map. Callers serialise access.
type Table struct {
	// Maps are the maps the table writes.
	Maps *zmaps.Set
	// Rules are the installed rules by id; callers only read them.
	Rules map[uint32]*policy.Rule
	// Prefixes counts the keys of each prefix map (PrefixKey.Slot).
	Prefixes [4]int
	// Generation is the rule generation config_map carries: a Plan's
	// Apply bumps it.
	Generation uint32

	// What config_map carries besides, written by WriteConfig: the
	// policy-routing mark, the session timeouts, the per-CPU event
	// rate, the SYN-flood threshold, and the number of entries in
	// ddos_dport_map and ddos_allow_map (so that the program knows
	// without a lookup whether either is empty).
	Mark           uint32
	Timeouts       Timeouts
	EventsPerSec   uint32
	SYNFlood       ddos.SYNFlood
	ProtectedPorts uint32
	AllowedSources uint32

	blocks   map[policy.PrefixKey]*block
	lens     map[policy.LensKey][]uint8
	lenCount map[policy.LensKey]map[uint8]int // keys per prefix length
	ext      map[extKey]*extEntry
	slots    *slots
	nextID   uint32
	nextSeq  uint64
	// cacheEpoch voids the dataplane's per-CPU flow caches when bumped
	// (config.cache_epoch); ncpus is how many CPUs they span.
	cacheEpoch uint32
	ncpus      uint32
}

// Timeouts are the session timeouts config_map carries (zfw.Timeouts).
type Timeouts struct {
	TCPEstablished, TCPTransitory, UDP, ICMPEcho time.Duration
}

// LimitError reports a change that would exceed a map's capacity (what
// zfw.LimitError tells users).
type LimitError struct {
	Limit     string
	Max, Have int
	Err       error
}

func (e *LimitError) Error() string { return e.Limit + " full" }

func (e *LimitError) Unwrap() error { return e.Err }

// New returns the table of empty maps, with the policy-routing mark.
// Load fills it from maps a previous process kept.
func New(m *zmaps.Set, mark uint32) *Table {
	ncpus, err := ebpf.PossibleCPU()
	if err != nil {
		ncpus = runtime.NumCPU() // the flow cache is cleared on these at least
	}
	return &Table{
		Maps:     m,
		Rules:    make(map[uint32]*policy.Rule),
		blocks:   make(map[policy.PrefixKey]*block),
		lens:     make(map[policy.LensKey][]uint8),
		lenCount: make(map[policy.LensKey]map[uint8]int),
		ext:      make(map[extKey]*extEntry),
		slots:    newSlots(m.Ranges.MaxEntries()),
		nextID:   1,
		nextSeq:  1,
		Mark:     mark,
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

// putRecords writes the records of new rules (ids not in the map) in
// one batch, recording how to delete those written.
func (t *Table) putRecords(u *undoLog, rules []*policy.Rule) error {
	ids, recs := make([]uint32, len(rules)), make([]bpfobj.ZfwRuleRecord, len(rules))
	for i, r := range rules {
		ids[i], recs[i] = r.ID, wire.Record(r)
	}
	n, err := zmaps.UpdateAll(t.Maps.RuleStore, ids, recs)
	if n > 0 {
		written := ids[:n]
		u.push(func() error {
			_, err := zmaps.DeleteAll(t.Maps.RuleStore, written)
			return err
		})
	}
	if err != nil {
		return mapError("rule_store_map", err)
	}
	return nil
}

// deleteRecords deletes the records of the rules of ids in one batch,
// recording how to put back those deleted.
func (t *Table) deleteRecords(u *undoLog, ids []uint32) error {
	present := make([]uint32, 0, len(ids))
	recs := make(map[uint32]bpfobj.ZfwRuleRecord, len(ids))
	for _, id := range ids {
		if r := t.Rules[id]; r != nil {
			present = append(present, id)
			recs[id] = wire.Record(r)
		}
	}
	deleted, err := zmaps.DeleteAll(t.Maps.RuleStore, present)
	if len(deleted) > 0 {
		u.push(func() error {
			old := make([]bpfobj.ZfwRuleRecord, len(deleted))
			for i, id := range deleted {
				old[i] = recs[id]
			}
			_, err := zmaps.UpdateAll(t.Maps.RuleStore, deleted, old)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("rule_store_map: delete: %w", err)
	}
	return nil
}

func mapError(name string, err error) error {
	if errors.Is(err, zmaps.ErrFull) {
		return &LimitError{Limit: name, Err: err}
	}
	return fmt.Errorf("%s: update: %w", name, err)
}

// Change is one change worked out in full by Plan before any map is
// touched.
type Change struct {
	add      []*policy.Rule
	remove   []uint32
	blocks   map[policy.PrefixKey][]uint32 // new id order per affected key; empty = key goes
	lens     map[policy.LensKey][]uint8    // new length lists that differ
	prefixes [4]int
	ext      map[extKey]*extChange // what happens to the listener ports touched
}

// Assign gives new rules their ids and insertion order.
func (t *Table) Assign(rules []*policy.Rule) {
	for _, r := range rules {
		r.ID = t.nextID
		t.nextID++
		r.Seq = t.nextSeq
		t.nextSeq++
	}
}

// Plan validates a change against every limit and works out the new
// layout of each prefix key it touches. extra lists keys to rewrite even
// if their rules did not change (repairing an adopted dataplane).
func (t *Table) Plan(add []*policy.Rule, remove []uint32, extra []policy.PrefixKey) (*Change, error) {
	p := &Change{
		add:      add,
		remove:   remove,
		blocks:   make(map[policy.PrefixKey][]uint32),
		lens:     make(map[policy.LensKey][]uint8),
		prefixes: t.Prefixes,
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
		if r := t.Rules[id]; r != nil {
			affected[policy.KeyOf(r)] = true
		}
	}
	for _, r := range add {
		added[r.ID] = r
		affected[policy.KeyOf(r)] = true
	}
	if n, limit := len(t.Rules)-len(remove)+len(add), int(t.Maps.Ranges.MaxEntries()); n > limit {
		return nil, &LimitError{Limit: "range_map", Max: limit, Have: n}
	}

	byKey := make(map[policy.PrefixKey][]*policy.Rule)
	for k := range affected {
		var list []*policy.Rule
		if b := t.blocks[k]; b != nil {
			for _, id := range b.ids {
				if !removed[id] && t.Rules[id] != nil {
					list = append(list, t.Rules[id])
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
		for _, r := range t.Rules {
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
				Limit: fmt.Sprintf("rules per prefix (%s %s)", policy.ProtoName(k.Proto), k.Prefix),
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

// Apply writes a plan make-before-break: records and rule blocks first,
// then the prefix keys that point at them, then the length lists; removal
// runs the other way. Any failure undoes what was written.
func (t *Table) Apply(p *Change) (err error) {
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

	if err := t.putRecords(&u, p.add); err != nil {
		return err
	}
	for _, r := range p.add {
		if len(r.Interfaces) > 0 {
			l := wire.IfList(r)
			if err := put(&u, t.Maps.IfLists, "if_list_extension_map", r.ID, &l, nil, false); err != nil {
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
		if err := put(&u, t.Maps.TProxyExt, "tproxy_extension_map", key, &v, &oldV, old != nil); err != nil {
			return err
		}
	}
	added := make(map[uint32]*policy.Rule, len(p.add))
	for _, r := range p.add {
		added[r.ID] = r
	}
	rule := func(id uint32) *policy.Rule {
		if r := t.Rules[id]; r != nil {
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
		// The slots are free ones: nothing to put back on failure.
		slots, entries := make([]uint32, len(ids)), make([]bpfobj.ZfwRangeEntry, len(ids))
		for i, id := range ids {
			slots[i], entries[i] = start+uint32(i), wire.RangeEntry(rule(id))
		}
		if _, err := zmaps.UpdateAll(t.Maps.Ranges, slots, entries); err != nil {
			return mapError("range_map", err)
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
	if err := t.deleteRecords(&u, p.remove); err != nil {
		return err
	}
	for _, id := range p.remove {
		r := t.Rules[id]
		if r == nil {
			continue
		}
		if len(r.Interfaces) > 0 {
			l := wire.IfList(r)
			if err := del(&u, t.Maps.IfLists, "if_list_extension_map", id, &l); err != nil {
				return err
			}
		}
	}
	for k, e := range p.ext {
		if old := t.ext[k]; e.owner == "" && old != nil {
			v := wire.ServiceID(old.owner)
			if err := del(&u, t.Maps.TProxyExt, "tproxy_extension_map", wire.TProxyExtKey(k.port, k.proto), &v); err != nil {
				return err
			}
		}
	}
	// Commit: cached verdicts of the old rules are void from here on.
	cfg := t.config(t.Generation + 1)
	if err := t.Maps.Config.Update(uint32(0), &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("config_map: update: %w", err)
	}

	// The maps now hold the plan; make the in-memory copy match.
	t.Generation++
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
	t.Prefixes = p.prefixes
	for _, id := range p.remove {
		delete(t.Rules, id)
		// A removed rule's count goes with it; ids are not reused.
		t.Maps.RuleHits.Delete(id)
	}
	for _, r := range p.add {
		t.Rules[r.ID] = r
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
func (t *Table) countLen(k policy.PrefixKey, d int) {
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
func (t *Table) planExt(add []*policy.Rule, remove []uint32) map[extKey]*extChange {
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
		if r := t.Rules[id]; r != nil && steersToPort(r) {
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
func (t *Table) prefixMap(slot int) (string, zmaps.Map) {
	switch slot {
	case 1:
		return "zt_tproxy6_map", t.Maps.Prefix6
	case 2:
		return "zt_egress_map", t.Maps.Egress4
	case 3:
		return "zt_egress6_map", t.Maps.Egress6
	}
	return "zt_tproxy_map", t.Maps.Prefix4
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

func (t *Table) putPrefix(u *undoLog, k policy.PrefixKey, b *block) error {
	v := bpfobj.ZfwPrefixValue{Start: b.start, Count: b.count}
	old := t.blocks[k]
	var oldV bpfobj.ZfwPrefixValue
	if old != nil {
		oldV = bpfobj.ZfwPrefixValue{Start: old.start, Count: old.count}
	}
	name, m := t.prefixMap(k.Slot())
	return put(u, m, name, prefixKey(k), &v, &oldV, old != nil)
}

func (t *Table) deletePrefix(u *undoLog, k policy.PrefixKey) error {
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

func (t *Table) putLens(u *undoLog, lk policy.LensKey, lens []uint8) error {
	old, existed := t.lens[lk]
	oldV := lensValue(old)
	if len(lens) == 0 {
		if !existed {
			return nil
		}
		return del(u, t.Maps.PrefixLens, "prefix_len_map", lk.MapKey(), &oldV)
	}
	v := lensValue(lens)
	return put(u, t.Maps.PrefixLens, "prefix_len_map", lk.MapKey(), &v, &oldV, existed)
}

// Block returns the ids of one prefix key's rules in precedence order;
// none for a key without rules. Callers must not change it.
func (t *Table) Block(k policy.PrefixKey) []uint32 {
	if b := t.blocks[k]; b != nil {
		return b.ids
	}
	return nil
}

// Steers reports whether any rule steers to the listener port.
func (t *Table) Steers(port uint16, proto uint8) bool {
	_, ok := t.ext[extKey{port, proto}]
	return ok
}
