package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"
)

// Defaults for the zero values of Options.
const (
	DefaultAddr = "127.0.0.1:53"
	DefaultTTL  = 60 * time.Second
)

// DefaultRange is the range addresses are allocated from when Options.Range
// is zero: the shared address space 100.64.0.0/10, as OpenZiti's tunnelers use.
var DefaultRange = netip.MustParsePrefix("100.64.0.0/10")

// ednsUDPSize is the UDP payload size advertised to EDNS clients (the DNS
// flag day 2020 value).
const ednsUDPSize = 1232

// Options configure a Server.
type Options struct {
	// Addr is the address the server listens on, over UDP and TCP
	// (DefaultAddr if empty). With port 0 the kernel picks a port, the
	// same for both; LocalAddr reports it.
	Addr string
	// Range is where addresses come from (DefaultRange if zero). See
	// Allocator for which addresses of it are handed out.
	Range netip.Prefix
	// TTL is the time to live of answers (DefaultTTL if zero), whole
	// seconds; it must be at least one second.
	TTL time.Duration
	// Logger receives the server's messages (discarded if nil).
	Logger logrus.FieldLogger
}

// Server is a DNS server that gives host names and wildcard domains
// addresses from a private range, so that their traffic can be intercepted.
// It implements the Resolver contract of package intercept/ziti.
//
// Its methods are safe for concurrent use, and AddHostname, AddWildcard and
// friends work whether or not the server is running.
type Server struct {
	opts  Options
	ttl   uint32
	qtype uint16 // dns.TypeA for an IPv4 range, dns.TypeAAAA for IPv6
	log   logrus.FieldLogger
	table *table

	mu      sync.Mutex
	started bool
	closed  bool
	local   netip.AddrPort
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed once both listeners have stopped
	err     error         // why serving stopped, if not because it was told to
}

// New returns a Server configured by opts. It does not listen yet; see Start
// and Serve.
func New(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if !opts.Range.IsValid() {
		opts.Range = DefaultRange
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.TTL < time.Second || opts.TTL/time.Second > 1<<31-1 {
		return nil, fmt.Errorf("dns: TTL %s is not between one second and 2^31-1 seconds", opts.TTL)
	}
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("dns: listen address %q: %w", opts.Addr, err)
	}
	alloc, err := NewAllocator(opts.Range)
	if err != nil {
		return nil, err
	}
	// A server listening inside its own range (as ziti-edge-tunnel's does on
	// 100.64.0.2) must not hand its own address to a name.
	if ip, err := netip.ParseAddr(host); err == nil {
		alloc.Reserve(ip.Unmap())
	}
	qtype := dns.TypeA
	if alloc.Prefix().Addr().Is6() {
		qtype = dns.TypeAAAA
	}
	return &Server{
		opts:  opts,
		ttl:   uint32(opts.TTL / time.Second),
		qtype: qtype,
		log:   log,
		table: newTable(alloc, log),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}, nil
}

// AddHostname returns the address of name, allocating one if name has none.
// Owners are counted: the same name added by two owners has one address,
// released when both have removed it. Adding a name twice for one owner is
// the same as adding it once. name is case-insensitive; a trailing dot is
// ignored. Names that are IP addresses or wildcards are refused.
func (s *Server) AddHostname(owner, name string) (netip.Addr, error) {
	return s.table.addHostname(owner, name)
}

// RemoveHostname drops owner's claim on name. When the name has no owner
// left (neither by AddHostname nor through a wildcard), its address is
// released.
func (s *Server) RemoveHostname(owner, name string) {
	s.table.removeHostname(owner, name)
}

// AddWildcard registers pattern, "*.example.com", for owner. A query for a
// name under the domain, at any depth (a.example.com, a.b.example.com), gets
// an address allocated at query time; "example.com" itself does not match,
// as in OpenZiti. Before the answer leaves, onAllocate(name, addr) is called
// for every owner of every wildcard that matches the name (the most specific
// domain first) and has not been told about it yet: one name gets one
// address, and each owner may intercept it. That includes names that already
// have an address from AddHostname or an earlier query, and owners that
// registered after the name got its address (they are told on the next
// query for it). If onAllocate returns an error the query fails with
// SERVFAIL and, unless someone else owns the name, the address is released;
// it is not recycled until the owners whose onAllocate had accepted it have
// removed their wildcards, since they may be intercepting it.
//
// onAllocate runs without the server's lock and may call Lookup,
// AddHostname and RemoveHostname, but not RemoveWildcard (which waits for
// running callbacks). Adding a pattern again for the same owner replaces
// its onAllocate.
func (s *Server) AddWildcard(owner, pattern string, onAllocate func(name string, addr netip.Addr) error) error {
	return s.table.addWildcard(owner, pattern, onAllocate)
}

// RemoveWildcard drops owner's registration of pattern, first waiting for
// its running onAllocate calls. Names it claimed that nobody else owns are
// released.
func (s *Server) RemoveWildcard(owner, pattern string) {
	s.table.removeWildcard(owner, pattern)
}

// Lookup returns the name addr was allocated to.
func (s *Server) Lookup(addr netip.Addr) (string, bool) {
	return s.table.lookup(addr)
}

// Range returns the range addresses are allocated from.
func (s *Server) Range() netip.Prefix {
	return s.table.alloc.Prefix()
}

// LocalAddr returns the address the server listens on (once started).
func (s *Server) LocalAddr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.local
}

// Start listens on Options.Addr, over UDP and TCP, and serves queries in the
// background until ctx is done or Close is called. It returns once the
// server is ready to answer.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("dns: server is closed")
	}
	if s.started {
		return errors.New("dns: server already started")
	}
	pc, ln, err := listen(ctx, s.opts.Addr)
	if err != nil {
		return err
	}
	s.started = true
	s.local = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	s.local = netip.AddrPortFrom(s.local.Addr().Unmap(), s.local.Port())

	servers := []*dns.Server{
		{PacketConn: pc, Handler: s},
		{Listener: ln, Handler: s},
	}
	errs := make(chan error, len(servers))
	for _, srv := range servers {
		ready := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(ready) }
		exited := make(chan struct{})
		go func() {
			err := srv.ActivateAndServe()
			close(exited)
			errs <- err
		}()
		// Shutting a server down is only possible once it runs.
		select {
		case <-ready:
		case <-exited:
		}
	}
	go s.run(ctx, servers, errs)
	s.log.WithField("addr", s.local).Info("dns: serving")
	return nil
}

// Serve is Start followed by waiting until the server stops. It returns nil
// when it stopped because ctx was done or Close was called.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-s.done
	return s.serveErr()
}

// Close stops the server, waiting for queries being answered, and closes
// its sockets. It returns why serving failed, if it did.
func (s *Server) Close() error {
	s.mu.Lock()
	started := s.started
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	s.mu.Unlock()
	if !started {
		return nil
	}
	<-s.done
	return s.serveErr()
}

func (s *Server) serveErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// run waits for a reason to stop, then stops both servers.
func (s *Server) run(ctx context.Context, servers []*dns.Server, errs <-chan error) {
	var failure error
	running := len(servers)
	select {
	case <-ctx.Done():
	case <-s.stop:
	case failure = <-errs:
		running--
	}
	for _, srv := range servers {
		_ = srv.ShutdownContext(context.Background())
	}
	for ; running > 0; running-- {
		if err := <-errs; err != nil && failure == nil {
			failure = err
		}
	}
	s.mu.Lock()
	if failure != nil {
		s.err = fmt.Errorf("dns: serving on %s: %w", s.local, failure)
		s.log.WithError(failure).Error("dns: server stopped")
	} else {
		s.log.Info("dns: server stopped")
	}
	s.mu.Unlock()
	close(s.done)
}

// listen opens the UDP socket and the TCP listener on addr, on one port.
func listen(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: listen address %q: %w", addr, err)
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	// With port 0 the kernel picks a free UDP port, which may be taken for
	// TCP: try a few.
	const attempts = 8
	for i := 0; ; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listen on udp %s: %w", addr, err)
		}
		bound := pc.LocalAddr().(*net.UDPAddr)
		tcpAddr := net.JoinHostPort(host, fmt.Sprint(bound.Port))
		ln, err := lc.Listen(ctx, "tcp", tcpAddr)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || i+1 == attempts || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("dns: listen on tcp %s: %w", tcpAddr, err)
		}
	}
}

// ServeDNS answers one query. It is the server's dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := s.answer(req)
	if err := w.WriteMsg(resp); err != nil {
		s.log.WithError(err).Debug("dns: write reply failed")
	}
}

// answer builds the reply to req:
//   - a name nobody owns: REFUSED, so the system resolver asks its next
//     server;
//   - A (AAAA for an IPv6 range) for an owned name: its address;
//   - any other type for an owned name: NOERROR with no answer. For AAAA with
//     the IPv4 range this tells clients the name exists but has no IPv6
//     address, so they use the A record at once; NXDOMAIN would deny the A
//     record too, and REFUSED or SERVFAIL would send them to other servers
//     or make them wait;
//   - a failed allocation or onAllocate: SERVFAIL.
func (s *Server) answer(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = false
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(ednsUDPSize, false)
	}
	if req.Opcode != dns.OpcodeQuery {
		resp.Rcode = dns.RcodeNotImplemented
		return resp
	}
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	q := req.Question[0]
	log := s.log.WithFields(logrus.Fields{"name": q.Name, "type": dns.TypeToString[q.Qtype]})
	n, err := canonicalName(q.Name)
	if err != nil || (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) {
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	if q.Qtype != s.qtype {
		if !s.table.owns(n) {
			resp.Rcode = dns.RcodeRefused
			return resp
		}
		resp.Authoritative = true
		return resp
	}
	addr, err := s.table.resolve(n)
	switch {
	case errors.Is(err, errNotOwned):
		resp.Rcode = dns.RcodeRefused
		return resp
	case err != nil:
		log.WithError(err).Error("dns: cannot answer")
		resp.Rcode = dns.RcodeServerFailure
		return resp
	}
	resp.Authoritative = true
	// Answer with the name as asked, keeping its case for resolvers that
	// randomise it (DNS 0x20).
	hdr := dns.RR_Header{Name: q.Name, Rrtype: s.qtype, Class: dns.ClassINET, Ttl: s.ttl}
	if s.qtype == dns.TypeA {
		resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr, A: addr.AsSlice()})
	} else {
		resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr, AAAA: addr.AsSlice()})
	}
	log.WithField("addr", addr).Trace("dns: answered")
	return resp
}
