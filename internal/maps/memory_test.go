package maps

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"
)

func TestMemoryHashIsBounded(t *testing.T) {
	m := NewMemory("h", ebpf.Hash, 2)
	for i := range uint32(2) {
		if err := m.Update(i, uint64(i), ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Update(uint32(9), uint64(9), ebpf.UpdateAny); !errors.Is(err, ErrFull) {
		t.Errorf("insert into full hash: %v, want ErrFull", err)
	}
	if err := m.Update(uint32(1), uint64(7), ebpf.UpdateAny); err != nil {
		t.Errorf("overwrite in full hash: %v", err)
	}
	var v uint64
	if err := m.Lookup(uint32(1), &v); err != nil || v != 7 {
		t.Errorf("lookup = %d, %v", v, err)
	}
	if err := m.Update(uint32(1), uint64(8), ebpf.UpdateNoExist); !errors.Is(err, ebpf.ErrKeyExist) {
		t.Errorf("NoExist on existing key: %v", err)
	}
	if err := m.Update(uint32(5), uint64(8), ebpf.UpdateExist); !errors.Is(err, ErrKeyNotExist) {
		t.Errorf("Exist on missing key: %v", err)
	}
	if err := m.Delete(uint32(5)); !errors.Is(err, ErrKeyNotExist) {
		t.Errorf("delete missing: %v", err)
	}
	if err := m.Lookup(uint32(5), &v); !errors.Is(err, ErrKeyNotExist) {
		t.Errorf("lookup missing: %v", err)
	}
}

func TestMemoryLRUEvictsTheLeastRecentlyUsed(t *testing.T) {
	m := NewMemory("l", ebpf.LRUHash, 2)
	m.Update(uint32(1), uint32(1), ebpf.UpdateAny)
	m.Update(uint32(2), uint32(2), ebpf.UpdateAny)
	var v uint32
	m.Lookup(uint32(1), &v) // 2 is now the oldest
	if err := m.Update(uint32(3), uint32(3), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if err := m.Lookup(uint32(2), &v); !errors.Is(err, ErrKeyNotExist) {
		t.Errorf("2 not evicted: %v", err)
	}
	if err := m.Lookup(uint32(1), &v); err != nil {
		t.Errorf("1 evicted: %v", err)
	}
}

func TestMemoryArraySemantics(t *testing.T) {
	m := NewMemory("a", ebpf.Array, 4)
	var v uint64
	if err := m.Lookup(uint32(3), &v); err != nil || v != 0 {
		t.Errorf("unset slot = %d, %v; arrays read zero", v, err)
	}
	if err := m.Update(uint32(4), uint64(1), ebpf.UpdateAny); err == nil {
		t.Error("update past the end accepted")
	}
	if err := m.Delete(uint32(1)); err == nil {
		t.Error("array delete accepted")
	}
	if err := m.Update(uint32(2), uint64(5), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	it := m.Iterate()
	var k uint32
	n := 0
	for it.Next(&k, &v) {
		n++
		if k != 2 || v != 5 {
			t.Errorf("iterated %d=%d", k, v)
		}
	}
	if n != 1 || it.Err() != nil {
		t.Errorf("iterated %d entries, err %v", n, it.Err())
	}
}

func TestMemorySetMatchesTheObject(t *testing.T) {
	s, err := NewMemorySet(1000, 500)
	if err != nil {
		t.Fatal(err)
	}
	if s.Ranges.MaxEntries() != 1000 || s.Prefix4.MaxEntries() != 500 || s.Prefix6.MaxEntries() != 500 {
		t.Errorf("sizes %d/%d/%d", s.Ranges.MaxEntries(), s.Prefix4.MaxEntries(), s.Prefix6.MaxEntries())
	}
	if s.Diag.MaxEntries() != 256 {
		t.Errorf("diag_map holds %d, want the object's 256", s.Diag.MaxEntries())
	}
}
