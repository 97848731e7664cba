package maps

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

var errE2BIG error = unix.E2BIG

// Memory is an in-memory map with the semantics of a BPF hash, LRU hash
// or array map: fixed capacity, ErrFull on insert into a full hash, LRU
// eviction instead, array keys bounded by the capacity and never deleted.
// Keys and values are stored in their native-endian encoding, as the
// kernel would hold them.
type Memory struct {
	name string
	typ  ebpf.MapType
	max  uint32

	mu    sync.Mutex
	data  map[string][]byte
	order []string // LRU recency, oldest first (LRU maps only)
}

// NewMemory returns an empty in-memory map.
func NewMemory(name string, typ ebpf.MapType, maxEntries uint32) *Memory {
	return &Memory{name: name, typ: typ, max: maxEntries, data: make(map[string][]byte)}
}

// MaxEntries reports the capacity.
func (m *Memory) MaxEntries() uint32 { return m.max }

// Len reports the number of entries held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.data)
}

func (m *Memory) isArray() bool {
	return m.typ == ebpf.Array || m.typ == ebpf.PerCPUArray
}

func (m *Memory) isLRU() bool {
	return m.typ == ebpf.LRUHash || m.typ == ebpf.LRUCPUHash
}

func encode(v any) ([]byte, error) {
	b, err := binary.Append(nil, binary.NativeEndian, v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return b, nil
}

func (m *Memory) arrayIndex(key []byte) (uint32, error) {
	if len(key) != 4 {
		return 0, fmt.Errorf("%s: array key must be 4 bytes, got %d", m.name, len(key))
	}
	i := binary.NativeEndian.Uint32(key)
	if i >= m.max {
		return 0, fmt.Errorf("%s: index %d out of range (max %d): %w", m.name, i, m.max, unix.E2BIG)
	}
	return i, nil
}

// Lookup decodes the value of key into valueOut.
func (m *Memory) Lookup(key, valueOut any) error {
	k, err := encode(key)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.data[string(k)]
	if !ok {
		if m.isArray() {
			if _, err := m.arrayIndex(k); err != nil {
				return err
			}
			// Arrays read as zero values.
			return decodeZero(valueOut)
		}
		return fmt.Errorf("%s: lookup: %w", m.name, ErrKeyNotExist)
	}
	m.touch(string(k))
	if _, err := binary.Decode(v, binary.NativeEndian, valueOut); err != nil {
		return fmt.Errorf("%s: decode %T: %w", m.name, valueOut, err)
	}
	return nil
}

func decodeZero(valueOut any) error {
	size := binary.Size(valueOut)
	if size < 0 {
		return fmt.Errorf("cannot size %T", valueOut)
	}
	_, err := binary.Decode(make([]byte, size), binary.NativeEndian, valueOut)
	return err
}

// Update stores value under key, honouring ebpf.UpdateNoExist/UpdateExist.
func (m *Memory) Update(key, value any, flags ebpf.MapUpdateFlags) error {
	k, err := encode(key)
	if err != nil {
		return err
	}
	v, err := encode(value)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isArray() {
		if _, err := m.arrayIndex(k); err != nil {
			return err
		}
		if flags == ebpf.UpdateNoExist {
			return fmt.Errorf("%s: update: %w", m.name, ebpf.ErrKeyExist)
		}
		m.data[string(k)] = v
		return nil
	}
	_, exists := m.data[string(k)]
	switch {
	case flags == ebpf.UpdateNoExist && exists:
		return fmt.Errorf("%s: update: %w", m.name, ebpf.ErrKeyExist)
	case flags == ebpf.UpdateExist && !exists:
		return fmt.Errorf("%s: update: %w", m.name, ErrKeyNotExist)
	}
	if !exists && uint32(len(m.data)) >= m.max {
		if !m.isLRU() {
			return fmt.Errorf("%s: update: %w (%d entries)", m.name, ErrFull, m.max)
		}
		oldest := m.order[0]
		m.order = m.order[1:]
		delete(m.data, oldest)
	}
	m.data[string(k)] = v
	m.touch(string(k))
	return nil
}

// touch marks k most recently used.
func (m *Memory) touch(k string) {
	if !m.isLRU() {
		return
	}
	if i := slices.Index(m.order, k); i >= 0 {
		m.order = slices.Delete(m.order, i, i+1)
	}
	m.order = append(m.order, k)
}

// Delete removes key. Array entries cannot be deleted, as in the kernel.
func (m *Memory) Delete(key any) error {
	k, err := encode(key)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isArray() {
		return fmt.Errorf("%s: delete: %w", m.name, unix.EINVAL)
	}
	if _, ok := m.data[string(k)]; !ok {
		return fmt.Errorf("%s: delete: %w", m.name, ErrKeyNotExist)
	}
	delete(m.data, string(k))
	if i := slices.Index(m.order, string(k)); i >= 0 {
		m.order = slices.Delete(m.order, i, i+1)
	}
	return nil
}

// Iterate walks a snapshot of the map in key-byte order.
func (m *Memory) Iterate() Iterator {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.data))
	for k := range m.data {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) })
	it := &memIter{}
	for _, k := range keys {
		it.keys = append(it.keys, []byte(k))
		it.vals = append(it.vals, slices.Clone(m.data[k]))
	}
	return it
}

type memIter struct {
	keys, vals [][]byte
	err        error
}

func (it *memIter) Next(keyOut, valueOut any) bool {
	if it.err != nil || len(it.keys) == 0 {
		return false
	}
	k, v := it.keys[0], it.vals[0]
	it.keys, it.vals = it.keys[1:], it.vals[1:]
	if _, err := binary.Decode(k, binary.NativeEndian, keyOut); err != nil {
		it.err = err
		return false
	}
	if _, err := binary.Decode(v, binary.NativeEndian, valueOut); err != nil {
		it.err = err
		return false
	}
	return true
}

func (it *memIter) Err() error { return it.err }
