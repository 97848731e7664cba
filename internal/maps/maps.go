// Package maps is the map backend the control plane writes through: the
// kernel's BPF maps, or an in-memory twin with the same semantics (hash,
// LRU, array, capacity errors) for tests that run without root.
package maps

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/zfw-go/zfw/internal/bpfobj"
)

// Map is the subset of *ebpf.Map the control plane uses. Keys and values
// are the bpf2go-generated types (or fixed-size integers).
type Map interface {
	Lookup(key, valueOut any) error
	Update(key, value any, flags ebpf.MapUpdateFlags) error
	Delete(key any) error
	Iterate() Iterator
	MaxEntries() uint32
}

// Iterator walks a map; see *ebpf.MapIterator.
type Iterator interface {
	Next(keyOut, valueOut any) bool
	Err() error
}

// Errors shared by both backends, so callers test one set.
var (
	// ErrKeyNotExist is returned by Lookup and Delete of a missing key.
	ErrKeyNotExist = ebpf.ErrKeyNotExist
	// ErrFull is returned by an insert into a full hash map.
	ErrFull = errors.New("map is full")
)

// Set is every map the control plane touches, by role.
type Set struct {
	Config     Map // config_map
	Diag       Map // diag_map
	Prefix4    Map // zt_tproxy_map
	Prefix6    Map // zt_tproxy6_map
	Egress4    Map // zt_egress_map
	Egress6    Map // zt_egress6_map
	PrefixLens Map // prefix_len_map
	Ranges     Map // range_map
	IfLists    Map // if_list_extension_map
	TProxyExt  Map // tproxy_extension_map
	RuleStore  Map // rule_store_map
	RuleHits   Map // rule_hits_map (per CPU; the control plane only deletes)
}

// FromObjects wraps the loaded kernel maps.
func FromObjects(m *bpfobj.ZfwMaps) *Set {
	return &Set{
		Config:     kernelMap{m.ConfigMap},
		Diag:       kernelMap{m.DiagMap},
		Prefix4:    kernelMap{m.ZtTproxyMap},
		Prefix6:    kernelMap{m.ZtTproxy6Map},
		Egress4:    kernelMap{m.ZtEgressMap},
		Egress6:    kernelMap{m.ZtEgress6Map},
		PrefixLens: kernelMap{m.PrefixLenMap},
		Ranges:     kernelMap{m.RangeMap},
		IfLists:    kernelMap{m.IfListExtensionMap},
		TProxyExt:  kernelMap{m.TproxyExtensionMap},
		RuleStore:  kernelMap{m.RuleStoreMap},
		RuleHits:   kernelMap{m.RuleHitsMap},
	}
}

// Size sets the capacities of the rule maps in spec: maxRules for
// range_map and the maps keyed by rule, maxPrefixes for each family's
// prefix map. Zero keeps the compiled size.
func Size(spec *ebpf.CollectionSpec, maxRules, maxPrefixes uint32) error {
	for name, n := range map[string]uint32{
		"range_map": maxRules, "rule_store_map": maxRules, "if_list_extension_map": maxRules,
		"tproxy_extension_map": maxRules, "rule_hits_map": maxRules,
		"zt_tproxy_map": maxPrefixes, "zt_tproxy6_map": maxPrefixes,
		"zt_egress_map": maxPrefixes, "zt_egress6_map": maxPrefixes,
	} {
		ms := spec.Maps[name]
		if ms == nil {
			return fmt.Errorf("object has no map %s", name)
		}
		if n > 0 {
			ms.MaxEntries = n
		}
	}
	return nil
}

// NewMemorySet builds in-memory maps shaped like the compiled object's:
// same types, key and value sizes, and capacities (resized as Size does).
func NewMemorySet(maxRules, maxPrefixes uint32) (*Set, error) {
	spec, err := bpfobj.LoadZfw()
	if err != nil {
		return nil, fmt.Errorf("load object spec: %w", err)
	}
	if err := Size(spec, maxRules, maxPrefixes); err != nil {
		return nil, err
	}
	mk := func(name string) Map {
		ms := spec.Maps[name]
		if ms == nil {
			err = errors.Join(err, fmt.Errorf("object has no map %s", name))
			return nil
		}
		return NewMemory(name, ms.Type, ms.MaxEntries)
	}
	s := &Set{
		Config:     mk("config_map"),
		Diag:       mk("diag_map"),
		Prefix4:    mk("zt_tproxy_map"),
		Prefix6:    mk("zt_tproxy6_map"),
		Egress4:    mk("zt_egress_map"),
		Egress6:    mk("zt_egress6_map"),
		PrefixLens: mk("prefix_len_map"),
		Ranges:     mk("range_map"),
		IfLists:    mk("if_list_extension_map"),
		TProxyExt:  mk("tproxy_extension_map"),
		RuleStore:  mk("rule_store_map"),
		RuleHits:   mk("rule_hits_map"),
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Kernel wraps one loaded kernel map, for the maps outside Set.
func Kernel(m *ebpf.Map) Map { return kernelMap{m} }

type kernelMap struct{ m *ebpf.Map }

func (k kernelMap) Lookup(key, valueOut any) error { return k.m.Lookup(key, valueOut) }
func (k kernelMap) Delete(key any) error           { return k.m.Delete(key) }
func (k kernelMap) MaxEntries() uint32             { return k.m.MaxEntries() }
func (k kernelMap) Iterate() Iterator              { return k.m.Iterate() }

func (k kernelMap) Update(key, value any, flags ebpf.MapUpdateFlags) error {
	return fullError(k.m.Update(key, value, flags))
}

// fullError marks the kernel's answer to an insert into a full hash map
// (E2BIG) as ErrFull, which both backends return.
func fullError(err error) error {
	if errors.Is(err, errE2BIG) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// batcher is a map that writes many keys in one system call.
type batcher interface {
	batchUpdate(keys, values any) (int, error)
	batchDelete(keys any) (int, error)
}

func (k kernelMap) batchUpdate(keys, values any) (int, error) {
	n, err := k.m.BatchUpdate(keys, values, nil)
	return n, fullError(err)
}

func (k kernelMap) batchDelete(keys any) (int, error) { return k.m.BatchDelete(keys, nil) }

// UpdateAll writes keys[i] = values[i] for every i, in one system call
// where m is a kernel map that batches (a kernel before 5.6 does not,
// and the memory maps write one by one). It returns how many were
// written, always the first ones, and the error that stopped it.
func UpdateAll[K, V any](m Map, keys []K, values []V) (int, error) {
	if len(keys) != len(values) {
		return 0, fmt.Errorf("%d keys and %d values", len(keys), len(values))
	}
	if b, ok := m.(batcher); ok && len(keys) > 1 {
		n, err := b.batchUpdate(keys, values)
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return n, err
		}
	}
	for i := range keys {
		if err := m.Update(&keys[i], &values[i], ebpf.UpdateAny); err != nil {
			return i, err
		}
	}
	return len(keys), nil
}

// DeleteAll deletes every key present of keys, in as few system calls
// as m allows (a missing key ends a kernel batch, which then goes on
// after it). It returns the keys deleted and the error that stopped it;
// missing keys are no error.
func DeleteAll[K any](m Map, keys []K) ([]K, error) {
	deleted, rest, err := deleteBatched(m, keys)
	if err != nil {
		return deleted, err
	}
	for i := range rest {
		err := m.Delete(&rest[i])
		switch {
		case err == nil:
			deleted = append(deleted, rest[i])
		case !errors.Is(err, ErrKeyNotExist):
			return deleted, err
		}
	}
	return deleted, nil
}

// deleteBatched deletes keys in batches where m batches, returning the
// keys deleted and those left to delete one by one (all of them, when m
// does not batch).
func deleteBatched[K any](m Map, keys []K) (deleted, rest []K, err error) {
	b, ok := m.(batcher)
	if !ok || len(keys) < 2 {
		return nil, keys, nil
	}
	for len(keys) > 0 {
		n, err := b.batchDelete(keys)
		deleted = append(deleted, keys[:n]...)
		switch {
		case err == nil:
			return deleted, nil, nil
		case errors.Is(err, ErrKeyNotExist):
			keys = keys[n+1:] // keys[n] is not there
		case errors.Is(err, ebpf.ErrNotSupported) && n == 0:
			return deleted, keys, nil
		default:
			return deleted, nil, err
		}
	}
	return deleted, nil, nil
}
