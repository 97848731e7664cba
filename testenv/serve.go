package testenv

import (
	"io"
	"sync"
)

// Serve runs an accept loop for tests and examples: it calls accept (a
// listener's Accept method) until it fails, as it does once the listener
// is closed, and runs handle on each accepted connection in a goroutine
// of its own, closing the connection when handle returns. It works for
// any listener whose Accept returns an io.Closer: net.Listener,
// tproxy.TCPListener, tproxy.UDPListener.
//
// The returned wait blocks until the loop and every handler have ended:
// call it after closing the listener, once the peers have hung up.
func Serve[C io.Closer](accept func() (C, error), handle func(C)) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	return wg.Wait
}
