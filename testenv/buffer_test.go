package testenv

import (
	"sync"
	"testing"
)

// A Buffer takes writes from several goroutines while it is read.
func TestBufferIsSafeForConcurrentUse(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 400 {
		t.Errorf("%d bytes written, want 400", n)
	}
}
