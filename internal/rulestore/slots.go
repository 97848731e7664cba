package rulestore

import "slices"

// extent is a run of range_map slots.
type extent struct{ start, count uint32 }

// slots allocates contiguous runs of range_map slots, first fit. Freed
// runs wait one allocation round in quarantine before reuse, so a packet
// still reading a block that was just replaced does not see it rewritten
// by the very next change.
type slots struct {
	free       []extent // sorted by start, coalesced
	quarantine []extent
	used       uint32
	capacity   uint32
}

func newSlots(capacity uint32) *slots {
	return &slots{free: []extent{{0, capacity}}, capacity: capacity}
}

// release moves quarantined runs to the free list.
func (s *slots) release() {
	for _, e := range s.quarantine {
		s.insertFree(e)
	}
	s.quarantine = s.quarantine[:0]
}

// alloc returns the start of a free run of n slots.
func (s *slots) alloc(n uint32) (uint32, bool) {
	if n == 0 {
		return 0, true
	}
	for i, e := range s.free {
		if e.count < n {
			continue
		}
		start := e.start
		if e.count == n {
			s.free = slices.Delete(s.free, i, i+1)
		} else {
			s.free[i] = extent{e.start + n, e.count - n}
		}
		s.used += n
		return start, true
	}
	return 0, false
}

// retire frees a run after the quarantine round.
func (s *slots) retire(start, n uint32) {
	if n == 0 {
		return
	}
	s.used -= n
	s.quarantine = append(s.quarantine, extent{start, n})
}

// undoAlloc returns a run allocated in a round that failed.
func (s *slots) undoAlloc(start, n uint32) {
	if n == 0 {
		return
	}
	s.used -= n
	s.insertFree(extent{start, n})
}

// reserve marks a run as used (adopting an existing dataplane).
func (s *slots) reserve(start, n uint32) bool {
	for i, e := range s.free {
		if start < e.start || start+n > e.start+e.count {
			continue
		}
		var repl []extent
		if start > e.start {
			repl = append(repl, extent{e.start, start - e.start})
		}
		if end := e.start + e.count; start+n < end {
			repl = append(repl, extent{start + n, end - start - n})
		}
		s.free = slices.Replace(s.free, i, i+1, repl...)
		s.used += n
		return true
	}
	return false
}

func (s *slots) insertFree(x extent) {
	i, _ := slices.BinarySearchFunc(s.free, x.start, func(e extent, t uint32) int {
		switch {
		case e.start < t:
			return -1
		case e.start > t:
			return 1
		}
		return 0
	})
	s.free = slices.Insert(s.free, i, x)
	// Coalesce with neighbours.
	if i+1 < len(s.free) && s.free[i].start+s.free[i].count == s.free[i+1].start {
		s.free[i].count += s.free[i+1].count
		s.free = slices.Delete(s.free, i+1, i+2)
	}
	if i > 0 && s.free[i-1].start+s.free[i-1].count == s.free[i].start {
		s.free[i-1].count += s.free[i].count
		s.free = slices.Delete(s.free, i, i+1)
	}
}
