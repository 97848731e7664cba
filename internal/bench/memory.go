package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/cilium/ebpf"
)

// MapMemory is the kernel memory of one map, as the kernel accounts it
// (fdinfo's memlock): preallocated maps count their capacity, maps
// created with BPF_F_NO_PREALLOC the elements they hold.
type MapMemory struct {
	Name       string
	MaxEntries int
	Bytes      uint64
}

// MapsOf returns the memory of every map the programs use, each map
// once, largest first.
func MapsOf(progs ...*ebpf.Program) ([]MapMemory, error) {
	seen := make(map[ebpf.MapID]bool)
	var out []MapMemory
	for _, p := range progs {
		info, err := p.Info()
		if err != nil {
			return nil, fmt.Errorf("program info: %w", err)
		}
		ids, ok := info.MapIDs()
		if !ok {
			return nil, fmt.Errorf("program %s: the kernel does not list its maps", info.Name)
		}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			mm, err := mapMemory(id)
			if err != nil {
				return nil, err
			}
			out = append(out, mm)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bytes > out[j].Bytes })
	return out, nil
}

func mapMemory(id ebpf.MapID) (MapMemory, error) {
	m, err := ebpf.NewMapFromID(id)
	if err != nil {
		return MapMemory{}, fmt.Errorf("open map %d: %w", id, err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		return MapMemory{}, fmt.Errorf("map %d: info: %w", id, err)
	}
	bytes, ok := info.Memlock()
	if !ok {
		return MapMemory{}, fmt.Errorf("map %s: the kernel does not report its memory", info.Name)
	}
	return MapMemory{Name: info.Name, MaxEntries: int(info.MaxEntries), Bytes: bytes}, nil
}

// TotalBytes sums the maps' memory.
func TotalBytes(maps []MapMemory) uint64 {
	var n uint64
	for _, m := range maps {
		n += m.Bytes
	}
	return n
}

// HeapInUse is the Go heap held by live objects after a full collection.
func HeapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// PinnedMaps returns the memory of every map pinned directly in the
// folder pin (a dataplane's pin folder), largest first.
func PinnedMaps(pin string) ([]MapMemory, error) {
	entries, err := os.ReadDir(pin)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", pin, err)
	}
	var out []MapMemory
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m, err := ebpf.LoadPinnedMap(filepath.Join(pin, e.Name()), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("open pinned map %s: %w", e.Name(), err)
		}
		info, err := m.Info()
		m.Close()
		if err != nil {
			return nil, fmt.Errorf("map %s: info: %w", e.Name(), err)
		}
		bytes, ok := info.Memlock()
		if !ok {
			return nil, fmt.Errorf("map %s: the kernel does not report its memory", e.Name())
		}
		out = append(out, MapMemory{Name: e.Name(), MaxEntries: int(info.MaxEntries), Bytes: bytes})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bytes > out[j].Bytes })
	return out, nil
}
