package main

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/intercept/ziti"
	"github.com/zfw-go/zfw/tproxy"
)

// copyBufferSize is the buffer of each direction of a flow, and the
// largest datagram a UDP flow carries: OpenZiti's tunnelers use 16 KiB
// minus 17 bytes of encryption overhead, so that one read fits one edge
// message; a UDP datagram can be larger, so UDP reads up to 64 KiB.
const (
	copyBufferSize = 0x4000 - 17
	maxDatagram    = 64 * 1024
)

// flow is a client connection and the Ziti connection carrying it.
type flow struct {
	client  net.Conn
	mu      sync.Mutex
	ziti    net.Conn
	stopped bool
}

// attach records the flow's Ziti connection. It reports false, having
// closed zc, when the flow was stopped meanwhile.
func (f *flow) attach(zc net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		zc.Close()
		return false
	}
	f.ziti = zc
	return true
}

// stop closes both sides; the copy loops then end.
func (f *flow) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	f.stopped = true
	f.client.Close()
	if f.ziti != nil {
		f.ziti.Close()
	}
}

// closeWriter is a connection whose sending side closes on its own: a
// *net.TCPConn and sdk-golang's edge.Conn.
type closeWriter interface {
	net.Conn
	CloseWrite() error
}

// addrPort returns a net.Addr's address and port, IPv4 unmapped.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// dial dials the service whose listener on port accepted a flow.
func (t *tunneler) dial(port uint16, fl ziti.Flow) (net.Conn, logrus.FieldLogger, error) {
	log := t.log.WithFields(logrus.Fields{"proto": fl.Protocol, "src": fl.Source, "dst": fl.Destination})
	name, opts, err := t.ic.DialOptions(port, fl)
	if err != nil {
		return nil, log, err
	}
	log = log.WithField("service", name)
	conn, err := t.zctx.DialWithOptions(name, opts)
	if err != nil {
		return nil, log, err
	}
	return conn, log, nil
}

// tunnelTCP carries an intercepted TCP connection over Ziti, each
// direction closing on its own (half-close) as OpenZiti's tunnelers do.
func (t *tunneler) tunnelTCP(port uint16, c *net.TCPConn) {
	f := &flow{client: c}
	if !t.listeners.track(f) {
		c.Close()
		return
	}
	defer t.listeners.untrack(f)
	fl := ziti.Flow{Protocol: intercept.TCP, Source: addrPort(c.RemoteAddr()), Destination: addrPort(c.LocalAddr())}
	zc, log, err := t.dial(port, fl)
	if err != nil {
		log.WithError(err).Warn("Dial failed; closing the client connection")
		f.stop()
		return
	}
	if !f.attach(zc) {
		return
	}
	log.Debug("TCP flow open")
	zcw, ok := zc.(closeWriter)
	if !ok {
		// sdk-golang's connections always can; refuse to guess otherwise.
		log.Error("Ziti connection cannot half-close; closing the flow")
		f.stop()
		return
	}
	pipe(c, zcw, f.stop)
	log.Debug("TCP flow closed")
}

// pipe copies between a and b until both directions end. A direction
// that reaches EOF closes the sending half of its destination, so the
// other side sees EOF while it may still answer; an error in either
// direction ends the flow at once. stop closes both; pipe calls it last.
func pipe(a, b closeWriter, stop func()) {
	oneWay := func(dst, src closeWriter) {
		_, err := io.CopyBuffer(dst, src, make([]byte, copyBufferSize))
		if err != nil || dst.CloseWrite() != nil {
			stop()
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { oneWay(b, a) })
	wg.Go(func() { oneWay(a, b) })
	wg.Wait()
	stop()
}

// tunnelUDP carries an intercepted UDP flow over Ziti: each datagram is
// one message, each message one datagram back, from the original
// destination. The flow ends when the session expires (the listener's
// idle timeout) or the Ziti side closes.
func (t *tunneler) tunnelUDP(port uint16, s *tproxy.UDPSession) {
	f := &flow{client: s}
	if !t.listeners.track(f) {
		s.Close()
		return
	}
	defer t.listeners.untrack(f)
	fl := ziti.Flow{Protocol: intercept.UDP, Source: s.ClientAddr(), Destination: s.OriginalDst()}
	zc, log, err := t.dial(port, fl)
	if err != nil {
		log.WithError(err).Warn("Dial failed; dropping the UDP flow")
		f.stop()
		return
	}
	if !f.attach(zc) {
		return
	}
	log.Debug("UDP flow open")
	var wg sync.WaitGroup
	relay := func(dst, src net.Conn) {
		defer f.stop()
		buf := make([]byte, maxDatagram)
		for {
			n, err := src.Read(buf)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					log.WithError(err).Debug("UDP flow read failed")
				}
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				log.WithError(err).Debug("UDP flow write failed")
				return
			}
		}
	}
	wg.Go(func() { relay(zc, s) })
	wg.Go(func() { relay(s, zc) })
	wg.Wait()
	log.Debug("UDP flow closed")
}
