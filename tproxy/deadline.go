package tproxy

import (
	"sync"
	"time"
)

// deadline is a settable point in time with a channel that is closed once
// it has passed, for select. Moving a deadline that has not yet passed
// keeps its channel, so goroutines already waiting see the new time.
type deadline struct {
	mu    sync.Mutex
	gen   uint64        // counts set calls; a timer only fires for its own
	timer *time.Timer   // pending close of ch, or nil
	ch    chan struct{} // closed when the deadline has passed
}

func newDeadline() *deadline {
	return &deadline{ch: make(chan struct{})}
}

// set moves the deadline to t; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if isClosed(d.ch) {
		d.ch = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		close(d.ch)
		return
	}
	gen, ch := d.gen, d.ch
	d.timer = time.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		// A later set has stopped this timer (or tried to, too late);
		// only the timer of the latest set may close the channel.
		if d.gen == gen {
			close(ch)
		}
	})
}

// done returns a channel that is closed once the deadline has passed.
func (d *deadline) done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

// passed reports whether the deadline has passed.
func (d *deadline) passed() bool {
	return isClosed(d.done())
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
