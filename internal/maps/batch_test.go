package maps

import (
	"errors"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/testenv"
)

// backends are the two kinds of map the batch helpers write: a kernel
// hash map (which batches) and its memory twin (one by one), of three
// entries each.
func backends(t *testing.T) map[string]func(t *testing.T) Map {
	return map[string]func(t *testing.T) Map{
		"memory": func(t *testing.T) Map { return NewMemory("h", ebpf.Hash, 3) },
		"kernel": func(t *testing.T) Map {
			testenv.RequirePrivileged(t)
			m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 3, Flags: unix.BPF_F_NO_PREALLOC})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			return Kernel(m)
		},
	}
}

func keysOf(t *testing.T, m Map) []uint32 {
	t.Helper()
	var keys []uint32
	var k uint32
	var v uint64
	it := m.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

func TestUpdateAllWritesTheFirstKeysUntilTheMapIsFull(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			m := open(t)
			n, err := UpdateAll(m, []uint32{1, 2}, []uint64{10, 20})
			if n != 2 || err != nil {
				t.Fatalf("UpdateAll of 2 = %d, %v", n, err)
			}
			// One overwrite and three inserts into a map with room for one.
			n, err = UpdateAll(m, []uint32{2, 3, 4, 5}, []uint64{21, 30, 40, 50})
			if n != 2 || !errors.Is(err, ErrFull) {
				t.Fatalf("UpdateAll past the capacity = %d, %v; want 2, ErrFull", n, err)
			}
			if got := keysOf(t, m); !slices.Equal(got, []uint32{1, 2, 3}) {
				t.Errorf("keys %v, want [1 2 3]", got)
			}
			var v uint64
			if err := m.Lookup(uint32(2), &v); err != nil || v != 21 {
				t.Errorf("key 2 = %d, %v; want 21", v, err)
			}
			if _, err := UpdateAll(m, []uint32{1}, []uint64{1, 2}); err == nil {
				t.Error("UpdateAll of 1 key and 2 values succeeded")
			}
		})
	}
}

func TestDeleteAllGoesPastMissingKeys(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			m := open(t)
			if _, err := UpdateAll(m, []uint32{1, 2, 3}, []uint64{10, 20, 30}); err != nil {
				t.Fatal(err)
			}
			deleted, err := DeleteAll(m, []uint32{7, 1, 8, 9, 3})
			if err != nil {
				t.Fatalf("DeleteAll: %v", err)
			}
			if !slices.Equal(deleted, []uint32{1, 3}) {
				t.Errorf("deleted %v, want [1 3]", deleted)
			}
			if got := keysOf(t, m); !slices.Equal(got, []uint32{2}) {
				t.Errorf("keys left %v, want [2]", got)
			}
			if deleted, err := DeleteAll(m, []uint32{5, 6}); err != nil || len(deleted) != 0 {
				t.Errorf("DeleteAll of missing keys = %v, %v", deleted, err)
			}
		})
	}
}
