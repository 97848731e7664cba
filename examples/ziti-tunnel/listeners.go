package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/intercept/ziti"
	"github.com/zfw-go/zfw/tproxy"
)

// listenAttempts bounds the search for a port free for both TCP and UDP.
const listenAttempts = 16

// loopback is where the TPROXY listeners bind; the dataplane steers
// intercepted packets to loopback:port.
var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// serviceListeners are one service's TPROXY listeners, on one port, and
// the accept loops serving them.
type serviceListeners struct {
	port    uint16
	tcp     *tproxy.TCPListener
	tcpDone chan struct{}
	udp     *tproxy.UDPListener
	udpDone chan struct{}
}

// closeTCP closes the TCP listener, if any, and waits for its loop.
func (s *serviceListeners) closeTCP() error {
	if s.tcp == nil {
		return nil
	}
	err := s.tcp.Close()
	<-s.tcpDone
	s.tcp, s.tcpDone = nil, nil
	return err
}

// closeUDP closes the UDP listener, if any, and waits for its loop.
func (s *serviceListeners) closeUDP() error {
	if s.udp == nil {
		return nil
	}
	err := s.udp.Close()
	<-s.udpDone
	s.udp, s.udpDone = nil, nil
	return err
}

func (s *serviceListeners) close() error {
	return errors.Join(s.closeTCP(), s.closeUDP())
}

// listenerSet implements ziti.Listeners with package tproxy: one TCP and
// one UDP listener per service, on the same loopback port, opened where
// the dataplane lives. It also tracks the flows they accept, so that a
// stop ends them.
type listenerSet struct {
	t *tunneler

	mu       sync.Mutex
	services map[string]*serviceListeners
	flows    map[*flow]struct{}
	closed   bool
}

func newListenerSet(t *tunneler) *listenerSet {
	return &listenerSet{t: t, services: map[string]*serviceListeners{}, flows: map[*flow]struct{}{}}
}

// Open implements ziti.Listeners. A service seen before keeps its port:
// the listeners of protocols it still uses stay, those of protocols it
// dropped close, and those of new protocols open on the same port.
func (ls *listenerSet) Open(ctx context.Context, spec ziti.ListenerSpec) (uint16, error) {
	wantTCP := slices.Contains(spec.Protocols, intercept.TCP)
	wantUDP := slices.Contains(spec.Protocols, intercept.UDP)
	if !wantTCP && !wantUDP {
		return 0, fmt.Errorf("service %s: no TCP or UDP to listen for", spec.ServiceName)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return 0, fmt.Errorf("service %s: tunneler stopping", spec.ServiceName)
	}
	sl := ls.services[spec.ServiceID]
	if sl == nil {
		sl = &serviceListeners{port: spec.Port}
	}
	if err := ls.update(ctx, sl, wantTCP, wantUDP); err != nil {
		return 0, fmt.Errorf("service %s: %w", spec.ServiceName, err)
	}
	ls.services[spec.ServiceID] = sl
	ls.t.log.WithFields(map[string]any{"service": spec.ServiceName, "port": sl.port, "tcp": wantTCP, "udp": wantUDP}).
		Debug("TPROXY listeners open")
	return sl.port, nil
}

// update opens and closes sl's listeners so that it has those wanted. A
// service without a port yet gets one free for both protocols.
func (ls *listenerSet) update(ctx context.Context, sl *serviceListeners, wantTCP, wantUDP bool) error {
	if !wantTCP {
		sl.closeTCP()
	}
	if !wantUDP {
		sl.closeUDP()
	}
	fresh := sl.port == 0
	var lastErr error
	for range listenAttempts {
		if wantTCP && sl.tcp == nil {
			tcp, err := ls.listenTCP(ctx, sl.port)
			if err != nil {
				return err
			}
			sl.tcp, sl.port = tcp, tcp.Port()
			sl.tcpDone = ls.serveTCP(sl.port, tcp)
		}
		if wantUDP && sl.udp == nil {
			udp, err := ls.listenUDP(ctx, sl.port)
			if fresh && errors.Is(err, syscall.EADDRINUSE) {
				// The port TCP got is taken for UDP: try another.
				lastErr = err
				sl.closeTCP()
				sl.port = 0
				continue
			}
			if err != nil {
				if fresh {
					sl.closeTCP()
				}
				return err
			}
			sl.udp, sl.port = udp, udp.Port()
			sl.udpDone = ls.serveUDP(sl.port, udp)
		}
		return nil
	}
	return fmt.Errorf("no port free for both TCP and UDP after %d attempts: %w", listenAttempts, lastErr)
}

func (ls *listenerSet) listenTCP(ctx context.Context, port uint16) (*tproxy.TCPListener, error) {
	var ln *tproxy.TCPListener
	err := ls.t.cfg.InNamespace(func() error {
		var err error
		ln, err = tproxy.ListenTCP(ctx, netip.AddrPortFrom(loopback, port))
		return err
	})
	return ln, err
}

func (ls *listenerSet) listenUDP(ctx context.Context, port uint16) (*tproxy.UDPListener, error) {
	var ln *tproxy.UDPListener
	err := ls.t.cfg.InNamespace(func() error {
		var err error
		ln, err = tproxy.ListenUDP(ctx, netip.AddrPortFrom(loopback, port), tproxy.UDPOptions{
			IdleTimeout: ls.t.cfg.UDPIdleTimeout,
			Logger:      ls.t.log,
		})
		return err
	})
	return ln, err
}

// serveTCP runs ln's accept loop; the channel closes when it returns.
func (ls *listenerSet) serveTCP(port uint16, ln *tproxy.TCPListener) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ls.acceptTCP(port, ln)
	}()
	return done
}

// serveUDP runs ln's accept loop; the channel closes when it returns.
func (ls *listenerSet) serveUDP(port uint16, ln *tproxy.UDPListener) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ls.acceptUDP(port, ln)
	}()
	return done
}

// Close implements ziti.Listeners. Flows already accepted go on.
func (ls *listenerSet) Close(serviceID string) error {
	ls.mu.Lock()
	sl := ls.services[serviceID]
	delete(ls.services, serviceID)
	ls.mu.Unlock()
	if sl == nil {
		return nil
	}
	return sl.close()
}

// closeAll closes every listener and ends every flow; later Opens fail.
func (ls *listenerSet) closeAll() {
	ls.mu.Lock()
	ls.closed = true
	services := ls.services
	ls.services = map[string]*serviceListeners{}
	flows := ls.flows
	ls.flows = map[*flow]struct{}{}
	ls.mu.Unlock()
	for _, sl := range services {
		sl.close()
	}
	for f := range flows {
		f.stop()
	}
}

// track records f as running, unless the set is closed.
func (ls *listenerSet) track(f *flow) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return false
	}
	ls.flows[f] = struct{}{}
	return true
}

// openFlows describes the flows running now, each as its network, client
// and intercepted destination ("udp 10.0.0.2:40000->10.99.1.10:53").
func (ls *listenerSet) openFlows() []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	open := make([]string, 0, len(ls.flows))
	for f := range ls.flows {
		c := f.client
		open = append(open, fmt.Sprintf("%s %s->%s", c.LocalAddr().Network(), c.RemoteAddr(), c.LocalAddr()))
	}
	return open
}

func (ls *listenerSet) untrack(f *flow) {
	ls.mu.Lock()
	delete(ls.flows, f)
	ls.mu.Unlock()
}

func (ls *listenerSet) acceptTCP(port uint16, ln *tproxy.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				ls.t.log.WithError(err).WithField("port", port).Warn("TCP accept failed")
			}
			return
		}
		go ls.t.tunnelTCP(port, c)
	}
}

func (ls *listenerSet) acceptUDP(port uint16, ln *tproxy.UDPListener) {
	for {
		s, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				ls.t.log.WithError(err).WithField("port", port).Warn("UDP accept failed")
			}
			return
		}
		go ls.t.tunnelUDP(port, s)
	}
}
