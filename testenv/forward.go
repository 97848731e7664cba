package testenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// LoopbackForward carries TCP connections made to loopback addresses
// inside a namespace to the same addresses in the namespace of the
// process that made it (see Namespace.ForwardLoopback).
type LoopbackForward struct {
	listeners []net.Listener
	wg        sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// ForwardLoopback makes each of addrs (host:port, usually on 127.0.0.1)
// inside n reach the same address in the process's own namespace, until
// Close: a process in n then talks to a server on the host's loopback,
// such as an OpenZiti controller. Traffic stays on the two loopbacks. If
// it fails, nothing it made is left.
func (n *Namespace) ForwardLoopback(addrs ...string) (*LoopbackForward, error) {
	f := &LoopbackForward{conns: map[net.Conn]struct{}{}}
	for _, addr := range addrs {
		var l net.Listener
		err := n.Do(func() error {
			var err error
			l, err = net.Listen("tcp", addr)
			return err
		})
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("forward %s into %s: %w", addr, n, err)
		}
		f.listeners = append(f.listeners, l)
		f.wg.Go(func() { f.serve(l, addr) })
	}
	return f, nil
}

// serve accepts in the namespace and dials addr from this goroutine,
// which runs in the process's namespace.
func (f *LoopbackForward) serve(l net.Listener, addr string) {
	for {
		in, err := l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", addr)
		if err != nil {
			in.Close()
			continue
		}
		if !f.track(in, out) {
			in.Close()
			out.Close()
			return
		}
		f.wg.Go(func() { pipe(out, in) })
		f.wg.Go(func() { pipe(in, out) })
	}
}

// pipe copies src to dst and passes the end of src on as a half-close.
func pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

func (f *LoopbackForward) track(conns ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	for _, c := range conns {
		f.conns[c] = struct{}{}
	}
	return true
}

// Close stops forwarding, ends the forwarded connections and waits for
// them. It is idempotent.
func (f *LoopbackForward) Close() error {
	var errs []error
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		for _, l := range f.listeners {
			errs = append(errs, l.Close())
		}
		for c := range f.conns {
			c.Close()
		}
	}
	f.mu.Unlock()
	f.wg.Wait()
	return errors.Join(errs...)
}
