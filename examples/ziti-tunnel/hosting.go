package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/openziti/edge-api/rest_model"
	sdk "github.com/openziti/sdk-golang/ziti"
	"github.com/openziti/sdk-golang/ziti/edge"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/intercept/ziti"
	"github.com/zfw-go/zfw/zfw"
)

// hoster hosts the services the identity may bind, as their host.v1 or
// host.v2 configs say: it binds each terminator, and carries each
// connection a client dials to the configured address (or the one the
// client asked for, where the config forwards it). With
// allowedSourceAddresses it opens those connections from the client's
// own address (IP_TRANSPARENT), having made those addresses local to the
// host (zfw.LocalSources) so that the replies come back to it.
type hoster struct {
	zctx sdk.Context
	// sources are the dataplane's local sources.
	sources *zfw.LocalSources
	// inNamespace runs fn where connections to the targets are opened.
	inNamespace func(fn func() error) error
	udpIdle     time.Duration
	log         logrus.FieldLogger

	events chan hostEvent
	mu     sync.Mutex
	hosted map[string]*hostedService // by service id
	conns  sync.WaitGroup
}

// hostEvent is a service event for the hoster.
type hostEvent struct {
	svc     rest_model.ServiceDetail
	removed bool
}

// hostedService is a service being hosted.
type hostedService struct {
	name      string
	hosts     []ziti.Host
	listeners []edge.Listener
	sources   []netip.Prefix // added to the local sources
}

func newHoster(zctx sdk.Context, sources *zfw.LocalSources, inNamespace func(func() error) error, udpIdle time.Duration, log logrus.FieldLogger) *hoster {
	return &hoster{
		zctx: zctx, sources: sources, inNamespace: inNamespace, udpIdle: udpIdle, log: log,
		events: make(chan hostEvent, 1024),
		hosted: make(map[string]*hostedService),
	}
}

// attach queues zctx's service events for run, and returns what stops
// that. The SDK's goroutine only queues.
func (h *hoster) attach() (detach func()) {
	queue := func(removed bool) func(sdk.Context, *rest_model.ServiceDetail) {
		return func(_ sdk.Context, svc *rest_model.ServiceDetail) {
			if svc == nil {
				return
			}
			select {
			case h.events <- hostEvent{svc: *svc, removed: removed}:
			default:
				h.log.WithField("service", deref(svc.Name)).Warn("Hosting: too many service events queued; this one is dropped")
			}
		}
	}
	ev := h.zctx.Events()
	removers := []func(){
		ev.AddServiceAddedListener(queue(false)),
		ev.AddServiceChangedListener(queue(false)),
		ev.AddServiceRemovedListener(queue(true)),
	}
	return func() {
		for _, r := range removers {
			r()
		}
	}
}

// run applies the queued events until ctx is done, then stops hosting
// everything and waits for the connections being carried.
func (h *hoster) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			h.mu.Lock()
			for id := range h.hosted {
				h.stop(id)
			}
			h.mu.Unlock()
			h.conns.Wait()
			return
		case ev := <-h.events:
			h.apply(ctx, ev)
		}
	}
}

// apply hosts the service as it is now, or stops hosting it.
func (h *hoster) apply(ctx context.Context, ev hostEvent) {
	id, name := deref(ev.svc.ID), deref(ev.svc.Name)
	log := h.log.WithField("service", name)
	var hosts []ziti.Host
	if !ev.removed && ziti.CanBind(&ev.svc) {
		var err error
		if hosts, err = ziti.DecodeHosts(&ev.svc); err != nil {
			log.WithError(err).Warn("Hosting: the service's host config is unusable; not hosted")
			hosts = nil
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur := h.hosted[id]; cur != nil {
		if cur.name == name && reflect.DeepEqual(cur.hosts, hosts) {
			return // unchanged
		}
		h.stop(id)
	}
	if len(hosts) == 0 {
		return
	}
	hs := &hostedService{name: name, hosts: hosts}
	h.hosted[id] = hs
	for _, host := range hosts {
		for _, p := range host.AllowedSourceAddresses {
			if err := h.sources.Add(ctx, p); err != nil {
				log.WithError(err).WithField("prefix", p).Warn("Hosting: cannot make an allowed source address local; connections from it will not get their replies")
				continue
			}
			hs.sources = append(hs.sources, p)
		}
		ln, err := h.zctx.ListenWithOptions(name, listenOptions(host.Listen))
		if err != nil {
			log.WithError(err).Warn("Hosting: bind failed")
			continue
		}
		hs.listeners = append(hs.listeners, ln)
		h.conns.Add(1)
		go h.accept(ln, host, log)
	}
	log.WithField("terminators", len(hs.listeners)).Info("Hosting")
}

// stop ends the hosting of service id: its bindings close (connections
// being carried go on), its local sources are taken back. h.mu is held.
func (h *hoster) stop(id string) {
	hs := h.hosted[id]
	if hs == nil {
		return
	}
	delete(h.hosted, id)
	for _, ln := range hs.listeners {
		ln.Close()
	}
	for _, p := range hs.sources {
		if err := h.sources.Remove(context.Background(), p); err != nil {
			h.log.WithError(err).WithField("prefix", p).Warn("Hosting: take back a local source")
		}
	}
	h.log.WithField("service", hs.name).Info("Hosting stopped")
}

// listenOptions are the SDK's options for a host config's listenOptions.
func listenOptions(l ziti.HostListen) *sdk.ListenOptions {
	o := sdk.DefaultListenOptions()
	o.Cost = l.Cost
	o.ConnectTimeout = l.ConnectTimeout
	o.MaxTerminators = l.MaxConnections
	o.Identity = l.Identity
	o.BindUsingEdgeIdentity = l.BindUsingEdgeIdentity
	switch l.Precedence {
	case "required":
		o.Precedence = sdk.PrecedenceRequired
	case "failed":
		o.Precedence = sdk.PrecedenceFailed
	}
	return o
}

// accept carries the connections ln accepts until it closes.
func (h *hoster) accept(ln edge.Listener, host ziti.Host, log logrus.FieldLogger) {
	defer h.conns.Done()
	for {
		c, err := ln.AcceptEdge()
		if err != nil {
			if !ln.IsClosed() {
				log.WithError(err).Warn("Hosting: accept failed; the binding ends")
			}
			return
		}
		h.conns.Add(1)
		go func() {
			defer h.conns.Done()
			h.carry(c, host, log)
		}()
	}
}

// carry takes one connection a client dialled to its target.
func (h *hoster) carry(zc edge.Conn, host ziti.Host, log logrus.FieldLogger) {
	t, err := host.Target(zc.GetAppData())
	if err != nil {
		log.WithError(err).Warn("Hosting: connection refused")
		zc.Close()
		return
	}
	log = log.WithFields(logrus.Fields{"proto": t.Protocol, "target": t.Address, "dialer": zc.GetDialerIdentityName()})
	if t.Source.IsValid() {
		log = log.WithField("src", t.Source)
	}
	var tc net.Conn
	err = h.inNamespace(func() error {
		var err error
		tc, err = dialTarget(t, host.Listen.ConnectTimeout)
		return err
	})
	if err != nil {
		log.WithError(err).Warn("Hosting: cannot reach the target")
		zc.Close()
		return
	}
	log.Debug("Hosted connection open")
	stop := sync.OnceFunc(func() {
		zc.Close()
		tc.Close()
	})
	if t.Protocol == intercept.TCP {
		pipe(zc, tc.(*net.TCPConn), stop)
	} else {
		h.relayDatagrams(zc, tc, stop, log)
	}
	log.Debug("Hosted connection closed")
}

// dialTarget connects to t, from t.Source when it is set: bound with
// IP_TRANSPARENT (IPV6_TRANSPARENT) to the client's own address.
func dialTarget(t ziti.HostTarget, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if t.Source.IsValid() {
		if t.Protocol == intercept.TCP {
			d.LocalAddr = net.TCPAddrFromAddrPort(t.Source)
		} else {
			d.LocalAddr = net.UDPAddrFromAddrPort(t.Source)
		}
		d.Control = func(network, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				level, opt := unix.SOL_IP, unix.IP_TRANSPARENT
				if t.Source.Addr().Is6() {
					level, opt = unix.SOL_IPV6, unix.IPV6_TRANSPARENT
				}
				serr = unix.SetsockoptInt(int(fd), level, opt, 1)
			})
			return errors.Join(err, serr)
		}
	}
	c, err := d.Dial(string(t.Protocol), t.Address)
	if err != nil && t.Source.Port() != 0 && errors.Is(err, unix.EADDRINUSE) {
		// The client's port is taken here: its address alone will do.
		t.Source = netip.AddrPortFrom(t.Source.Addr(), 0)
		return dialTarget(t, timeout)
	}
	return c, err
}

// relayDatagrams carries a hosted UDP flow: each Ziti message is one
// datagram to the target, each datagram back one message. The flow ends
// when neither side sent anything for the idle timeout, or either ends.
func (h *hoster) relayDatagrams(zc, uc net.Conn, stop func(), log logrus.FieldLogger) {
	var last sync.Mutex
	lastSeen := time.Now()
	touch := func() {
		last.Lock()
		lastSeen = time.Now()
		last.Unlock()
	}
	idleFor := func() time.Duration {
		last.Lock()
		defer last.Unlock()
		return time.Since(lastSeen)
	}
	relay := func(dst, src net.Conn) {
		defer stop()
		buf := make([]byte, maxDatagram)
		for {
			src.SetReadDeadline(time.Now().Add(h.udpIdle))
			n, err := src.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && idleFor() < h.udpIdle {
					continue // the other direction is busy
				}
				if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !(errors.As(err, &ne) && ne.Timeout()) {
					log.WithError(err).Debug("Hosted UDP flow read failed")
				}
				return
			}
			touch()
			if _, err := dst.Write(buf[:n]); err != nil {
				log.WithError(err).Debug("Hosted UDP flow write failed")
				return
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { relay(uc, zc) })
	wg.Go(func() { relay(zc, uc) })
	wg.Wait()
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
