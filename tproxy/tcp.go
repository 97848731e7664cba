package tproxy

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// TCPListener is a transparent TCP listener. It implements net.Listener.
// Every connection it accepts reports the address the client dialled (the
// original destination) as its LocalAddr.
//
// A TCPListener is safe for concurrent use.
type TCPListener struct {
	ln   *net.TCPListener
	port uint16

	closeOnce sync.Once
}

// ListenTCP opens a transparent TCP listener on addr. An IPv4 address binds
// an IPv4 socket; an IPv6 address binds an IPv6-only socket, except the
// unspecified address ([::]), which binds a dual-stack one. Port 0 picks a
// free port; Port reports it.
//
// The socket has IP_TRANSPARENT (IPV6_TRANSPARENT) and SO_REUSEADDR set,
// and is plain TCP, never Multipath TCP. ctx bounds only the opening of
// the listener, as for net.ListenConfig.Listen.
func ListenTCP(ctx context.Context, addr netip.AddrPort) (*TCPListener, error) {
	if !addr.IsValid() {
		return nil, listenError("tcp", addr, errInvalidAddr)
	}
	network, addr := listenNetwork("tcp", addr)
	lc := net.ListenConfig{Control: control(false)}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, network, addr.String())
	if err != nil {
		return nil, listenError(network, addr, err)
	}
	tl := ln.(*net.TCPListener)
	return &TCPListener{ln: tl, port: uint16(tl.Addr().(*net.TCPAddr).Port)}, nil
}

// Accept waits for and returns the next connection. Its LocalAddr is the
// original destination of the connection. Errors are the net package's;
// after Close they satisfy errors.Is(err, net.ErrClosed).
func (l *TCPListener) Accept() (net.Conn, error) {
	c, err := l.ln.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptTCP is Accept returning the connection's concrete type.
func (l *TCPListener) AcceptTCP() (*net.TCPConn, error) {
	return l.ln.AcceptTCP()
}

// Addr returns the listener's bound address, a *net.TCPAddr.
func (l *TCPListener) Addr() net.Addr { return l.ln.Addr() }

// Port returns the port the listener is bound to, the one to steer
// traffic to; it is never 0.
func (l *TCPListener) Port() uint16 { return l.port }

// SetDeadline sets the deadline for Accept, as net.TCPListener's does.
func (l *TCPListener) SetDeadline(t time.Time) error { return l.ln.SetDeadline(t) }

// Close stops listening. Connections already accepted stay open. Blocked
// Accept calls return an error. Close may be called more than once; later
// calls return nil.
func (l *TCPListener) Close() error {
	var err error
	l.closeOnce.Do(func() { err = l.ln.Close() })
	return err
}
