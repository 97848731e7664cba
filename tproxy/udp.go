package tproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Defaults for the zero fields of UDPOptions.
const (
	DefaultIdleTimeout    = 30 * time.Second
	DefaultBacklog        = 128
	DefaultQueueLen       = 64
	DefaultMaxSessions    = 16384
	DefaultMaxQueuedBytes = 32 << 20
)

// evictIdle is how long a session must have been idle before a new one
// may take its place when MaxSessions are open (or IdleTimeout, if that
// is shorter): a flood of new flows cannot push out flows in use.
const evictIdle = time.Second

// UDPOptions configures ListenUDP. The zero value is ready to use.
type UDPOptions struct {
	// IdleTimeout ends a session that has carried no datagram in either
	// direction for this long. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration

	// Backlog is how many new sessions may wait for Accept. A datagram
	// that would start a session beyond it is dropped. Zero means
	// DefaultBacklog.
	Backlog int

	// QueueLen is how many datagrams may wait for one session's Read.
	// Datagrams beyond it are dropped, never blocking other sessions.
	// Zero means DefaultQueueLen.
	QueueLen int

	// MaxSessions bounds the sessions open at once, accepted or waiting
	// for Accept, so that flows from rotated or spoofed source ports
	// cannot exhaust memory. A new flow beyond it takes the place of the
	// session idle longest if that one has been idle for a second (or
	// IdleTimeout, if shorter); otherwise its datagram is dropped and
	// counted (UDPStats.Refused). Open sessions keep working. Zero means
	// DefaultMaxSessions.
	MaxSessions int

	// MaxQueuedBytes bounds the datagram bytes waiting for Read in all
	// sessions together; a datagram beyond it is dropped and counted
	// (UDPStats.MemoryDrops). Zero means DefaultMaxQueuedBytes.
	MaxQueuedBytes int

	// Logger, if set, receives debug messages about sessions and drops,
	// and warnings about failed reads.
	Logger logrus.FieldLogger
}

// UDPStats counts what a UDPListener has seen since it was opened.
type UDPStats struct {
	Datagrams    uint64 // datagrams received
	Sessions     uint64 // sessions started
	Active       int    // sessions open now, accepted or waiting for Accept
	Expired      uint64 // sessions ended by IdleTimeout
	QueueDrops   uint64 // datagrams dropped because their session's queue was full
	BacklogDrops uint64 // datagrams dropped because the Accept backlog was full
	ReadErrors   uint64 // failed reads of the socket, and truncated datagrams
	Refused      uint64 // new sessions refused: MaxSessions open, none idle long enough to give way
	Evicted      uint64 // idle sessions ended to make room for a new one
	MemoryDrops  uint64 // datagrams dropped because MaxQueuedBytes were queued
	QueuedBytes  int    // datagram bytes waiting for Read now
}

// maxDatagram is the largest UDP payload the listener reads whole.
const maxDatagram = 1<<16 - 1

// oobSize holds the original destination control messages of either
// family.
var oobSize = unix.CmsgSpace(unix.SizeofSockaddrInet6) + unix.CmsgSpace(unix.SizeofSockaddrInet4)

// flowKey identifies a session. Both addresses are unmapped, so that an
// IPv4 client seen through a dual-stack socket has one key.
type flowKey struct {
	client, dst netip.AddrPort
}

// UDPListener is a transparent UDP socket that groups the datagrams it
// receives into sessions, one per client address and original
// destination. A single goroutine reads the socket and queues each
// datagram for its session; Accept returns each new session.
//
// A UDPListener is safe for concurrent use.
type UDPListener struct {
	conn  *net.UDPConn
	laddr netip.AddrPort // bound address, unmapped
	opts  UDPOptions
	epoch time.Time // origin of the sessions' activity clock

	backlog chan *UDPSession
	done    chan struct{} // closed by Close
	wg      sync.WaitGroup
	once    sync.Once

	mu       sync.Mutex
	sessions map[flowKey]*UDPSession // nil once closed
	senders  map[netip.AddrPort]*sender
	queued   int // bytes waiting in the queues of open sessions; guarded by mu
	// evictNotBefore: until then no session can have been idle long
	// enough to give way (see evictLocked); guarded by mu.
	evictNotBefore time.Duration

	datagrams, started, expired    atomic.Uint64
	queueDrops, backlogDrops, errs atomic.Uint64
	refused, evicted, memoryDrops  atomic.Uint64
}

// ListenUDP opens a transparent UDP socket on addr. Address families are
// as for ListenTCP. Port 0 picks a free port; Port reports it.
//
// The socket has IP_TRANSPARENT (IPV6_TRANSPARENT), SO_REUSEADDR and
// IP_RECVORIGDSTADDR (IPV6_RECVORIGDSTADDR) set. ctx bounds only the
// opening of the socket; Close releases it.
func ListenUDP(ctx context.Context, addr netip.AddrPort, opts UDPOptions) (*UDPListener, error) {
	if !addr.IsValid() {
		return nil, listenError("udp", addr, errInvalidAddr)
	}
	network, addr := listenNetwork("udp", addr)
	if err := opts.resolve(); err != nil {
		return nil, listenError(network, addr, err)
	}
	lc := net.ListenConfig{Control: control(true)}
	pc, err := lc.ListenPacket(ctx, network, addr.String())
	if err != nil {
		return nil, listenError(network, addr, err)
	}
	conn := pc.(*net.UDPConn)
	l := &UDPListener{
		conn:     conn,
		laddr:    unmap(conn.LocalAddr().(*net.UDPAddr).AddrPort()),
		opts:     opts,
		epoch:    time.Now(),
		backlog:  make(chan *UDPSession, opts.Backlog),
		done:     make(chan struct{}),
		sessions: make(map[flowKey]*UDPSession),
		senders:  make(map[netip.AddrPort]*sender),
	}
	l.wg.Add(2)
	go l.readLoop()
	go l.sweepLoop()
	return l, nil
}

// resolve checks o and fills in its defaults.
func (o *UDPOptions) resolve() error {
	switch {
	case o.IdleTimeout < 0:
		return fmt.Errorf("negative IdleTimeout %v", o.IdleTimeout)
	case o.Backlog < 0:
		return fmt.Errorf("negative Backlog %d", o.Backlog)
	case o.QueueLen < 0:
		return fmt.Errorf("negative QueueLen %d", o.QueueLen)
	case o.MaxSessions < 0:
		return fmt.Errorf("negative MaxSessions %d", o.MaxSessions)
	case o.MaxQueuedBytes < 0:
		return fmt.Errorf("negative MaxQueuedBytes %d", o.MaxQueuedBytes)
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Backlog == 0 {
		o.Backlog = DefaultBacklog
	}
	if o.QueueLen == 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.MaxQueuedBytes == 0 {
		o.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	return nil
}

// unmap turns an IPv4-mapped IPv6 address into the IPv4 address it maps.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Accept waits for and returns the next new session: the first datagram
// from a client to an original destination that has no open session. The
// session's first datagram is waiting for its Read. After Close, Accept
// returns an error satisfying errors.Is(err, net.ErrClosed).
func (l *UDPListener) Accept() (*UDPSession, error) {
	if isClosed(l.done) {
		return nil, l.closedError()
	}
	select {
	case s := <-l.backlog:
		return s, nil
	case <-l.done:
		return nil, l.closedError()
	}
}

func (l *UDPListener) closedError() error {
	return &net.OpError{Op: "accept", Net: "udp", Addr: l.Addr(), Err: net.ErrClosed}
}

// Addr returns the listener's bound address, a *net.UDPAddr.
func (l *UDPListener) Addr() net.Addr { return l.conn.LocalAddr() }

// Port returns the port the listener is bound to, the one to steer
// traffic to; it is never 0.
func (l *UDPListener) Port() uint16 { return l.laddr.Port() }

// Stats returns the listener's counters.
func (l *UDPListener) Stats() UDPStats {
	l.mu.Lock()
	active, queued := len(l.sessions), l.queued
	l.mu.Unlock()
	return UDPStats{
		Datagrams:    l.datagrams.Load(),
		Sessions:     l.started.Load(),
		Active:       active,
		Expired:      l.expired.Load(),
		QueueDrops:   l.queueDrops.Load(),
		BacklogDrops: l.backlogDrops.Load(),
		ReadErrors:   l.errs.Load(),
		Refused:      l.refused.Load(),
		Evicted:      l.evicted.Load(),
		MemoryDrops:  l.memoryDrops.Load(),
		QueuedBytes:  queued,
	}
}

// Close closes the socket and every session, and waits for the
// listener's goroutines to end. Blocked Accept and Read calls return an
// error satisfying errors.Is(err, net.ErrClosed). Close may be called more
// than once; later calls return nil.
func (l *UDPListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.conn.Close()
		l.mu.Lock()
		for _, s := range l.sessions {
			s.endLocked(errListenerClosed)
		}
		l.sessions = nil
		for dst, sd := range l.senders {
			sd.conn.Close()
			delete(l.senders, dst)
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return err
}

// now is the time on the sessions' activity clock.
func (l *UDPListener) now() time.Duration { return time.Since(l.epoch) }

// readLoop reads the socket until it is closed and delivers every
// datagram to its session.
func (l *UDPListener) readLoop() {
	defer l.wg.Done()
	buf := make([]byte, maxDatagram)
	oob := make([]byte, oobSize)
	for {
		n, oobn, flags, src, err := l.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.errs.Add(1)
			if l.opts.Logger != nil {
				l.opts.Logger.WithError(err).Warn("tproxy: udp read failed")
			}
			// Do not spin on an error that persists.
			select {
			case <-l.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		l.datagrams.Add(1)
		if flags&unix.MSG_TRUNC != 0 {
			l.errs.Add(1)
			continue
		}
		dst, ok := origDst(oob[:oobn])
		if !ok {
			dst = l.laddr
		}
		key := flowKey{client: unmap(src), dst: dst}
		l.deliver(key, append([]byte(nil), buf[:n]...))
	}
}

// origDst returns the original destination from the control messages of
// a received datagram.
func origDst(oob []byte) (netip.AddrPort, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_ORIGDSTADDR &&
			len(m.Data) >= unix.SizeofSockaddrInet4:
		case m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_ORIGDSTADDR &&
			len(m.Data) >= unix.SizeofSockaddrInet6:
		default:
			continue
		}
		sa, err := unix.ParseOrigDstAddr(&m)
		if err != nil {
			continue
		}
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), true
		case *unix.SockaddrInet6:
			return unmap(netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))), true
		}
	}
	return netip.AddrPort{}, false
}

// deliver queues datagram d for the session of key, starting the session
// if there is none. It never blocks: a full queue or backlog drops d.
func (l *UDPListener) deliver(key flowKey, d []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions == nil {
		return
	}
	if l.queued+len(d) > l.opts.MaxQueuedBytes {
		l.memoryDrops.Add(1)
		l.debug(key, "tproxy: udp queued bytes at their bound; datagram dropped")
		return
	}
	s := l.sessions[key]
	if s == nil {
		if len(l.sessions) >= l.opts.MaxSessions && !l.evictLocked() {
			l.refused.Add(1)
			l.debug(key, "tproxy: udp sessions at their bound, none idle; datagram dropped")
			return
		}
		s = newSession(l, key)
		select {
		case l.backlog <- s:
		default:
			l.backlogDrops.Add(1)
			l.debug(key, "tproxy: udp accept backlog full; datagram dropped")
			return
		}
		s.enqueueLocked(d) // the queue is empty and has room for one
		l.sessions[key] = s
		l.started.Add(1)
		l.debug(key, "tproxy: udp session started")
		return
	}
	s.touch()
	if !s.enqueueLocked(d) {
		l.queueDrops.Add(1)
		l.debug(key, "tproxy: udp session queue full; datagram dropped")
	}
}

// evictLocked ends the session idle longest if it has been idle for
// evictIdle (or IdleTimeout, if shorter), and reports whether it did.
// l.mu must be held.
func (l *UDPListener) evictLocked() bool {
	now := l.now()
	if now < l.evictNotBefore {
		return false // a flood of refusals costs no scan
	}
	var oldest *UDPSession
	for _, s := range l.sessions {
		if oldest == nil || s.last.Load() < oldest.last.Load() {
			oldest = s
		}
	}
	if oldest == nil {
		return false
	}
	// Activity only moves a session's last use forward, and new sessions
	// start now: no session can give way before the oldest one could.
	wait := min(evictIdle, l.opts.IdleTimeout)
	if last := time.Duration(oldest.last.Load()); now-last < wait {
		l.evictNotBefore = last + wait
		return false
	}
	oldest.endLocked(io.EOF)
	l.evicted.Add(1)
	l.debug(oldest.key, "tproxy: udp session evicted for a new one")
	return true
}

// debug logs msg about the flow of key, if there is a Logger.
func (l *UDPListener) debug(key flowKey, msg string) {
	if l.opts.Logger != nil {
		l.opts.Logger.WithFields(logrus.Fields{"client": key.client, "dst": key.dst}).Debug(msg)
	}
}

// sweepLoop ends idle sessions until the listener is closed.
func (l *UDPListener) sweepLoop() {
	defer l.wg.Done()
	every := max(l.opts.IdleTimeout/4, 5*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
			l.sweep()
		}
	}
}

// sweep ends the sessions idle for IdleTimeout or longer.
func (l *UDPListener) sweep() {
	cutoff := l.now() - l.opts.IdleTimeout
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.sessions {
		if time.Duration(s.last.Load()) <= cutoff {
			s.endLocked(io.EOF)
			l.expired.Add(1)
			l.debug(s.key, "tproxy: udp session expired")
		}
	}
}

// errListenerClosed ends the sessions of a closed listener.
var errListenerClosed = fmt.Errorf("listener closed: %w", net.ErrClosed)

// UDPSession is one UDP flow: the datagrams between a client address and
// port and the original destination it sent them to. It implements
// net.Conn: Read returns one datagram at a time and Write sends one, from
// the original destination, through the listener's socket.
//
// A session ends when it is closed, when its listener is closed, or when
// it has carried no datagram for the listener's IdleTimeout. Once it has
// ended, a new datagram of the same flow starts a new session.
//
// A UDPSession is safe for concurrent use.
type UDPSession struct {
	l      *UDPListener
	key    flowKey
	local  *net.UDPAddr // original destination
	remote *net.UDPAddr // client
	oob    []byte       // PKTINFO control message that sets the source to dst

	queue chan []byte
	last  atomic.Int64 // l.now() of the last datagram either way

	rd, wd *deadline

	done chan struct{} // closed when the session ends
	err  error         // why it ended: io.EOF, net.ErrClosed or errListenerClosed; set before done is closed
	over bool          // done is closed; guarded by l.mu
	// sender: s holds a reference on l.senders[key.dst]; guarded by l.mu.
	sender bool
	// bytes in queue, counted in l.queued while the session is open;
	// guarded by l.mu.
	bytes int
}

func newSession(l *UDPListener, key flowKey) *UDPSession {
	s := &UDPSession{
		l:      l,
		key:    key,
		local:  net.UDPAddrFromAddrPort(key.dst),
		remote: net.UDPAddrFromAddrPort(key.client),
		oob:    pktinfo(key.dst.Addr()),
		queue:  make(chan []byte, l.opts.QueueLen),
		rd:     newDeadline(),
		wd:     newDeadline(),
		done:   make(chan struct{}),
	}
	s.touch()
	return s
}

// pktinfo returns the control message that makes a datagram's source
// address src, or nil if src is unspecified and the kernel should choose.
func pktinfo(src netip.Addr) []byte {
	switch {
	case src.IsUnspecified():
		return nil
	case src.Is4():
		a := src.As4()
		return unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: a, Addr: a})
	default:
		return unix.PktInfo6(&unix.Inet6Pktinfo{Addr: src.As16()})
	}
}

func (s *UDPSession) touch() { s.last.Store(int64(s.l.now())) }

// enqueueLocked queues d for Read unless the queue is full. l.mu must be
// held.
func (s *UDPSession) enqueueLocked(d []byte) bool {
	select {
	case s.queue <- d:
		s.bytes += len(d)
		s.l.queued += len(d)
		return true
	default:
		return false
	}
}

// dequeued gives back to the listener's bound the bytes of a datagram
// Read took from the queue. An ended session gave all of its bytes back
// when it ended.
func (s *UDPSession) dequeued(d []byte) {
	s.l.mu.Lock()
	if !s.over {
		s.bytes -= len(d)
		s.l.queued -= len(d)
	}
	s.l.mu.Unlock()
}

// endLocked ends the session for reason and forgets it. l.mu must be held.
func (s *UDPSession) endLocked(reason error) {
	if s.over {
		return
	}
	s.over = true
	s.err = reason
	// What is still queued stays readable (after expiry) but no longer
	// counts against the listener's bound: the session is gone from it.
	s.l.queued -= s.bytes
	s.bytes = 0
	close(s.done)
	if s.sender {
		s.sender = false
		s.l.releaseSenderLocked(s.key.dst)
	}
	if s.l.sessions[s.key] == s {
		delete(s.l.sessions, s.key)
	}
}

// ClientAddr returns the client's address and port.
func (s *UDPSession) ClientAddr() netip.AddrPort { return s.key.client }

// OriginalDst returns the address and port the client sent to.
func (s *UDPSession) OriginalDst() netip.AddrPort { return s.key.dst }

// LocalAddr returns the original destination, a *net.UDPAddr.
func (s *UDPSession) LocalAddr() net.Addr { return s.local }

// RemoteAddr returns the client's address, a *net.UDPAddr.
func (s *UDPSession) RemoteAddr() net.Addr { return s.remote }

// Read reads the next datagram of the flow into b and returns its length.
// A datagram longer than b is truncated to fit. Once the session has
// expired, Read returns the datagrams still queued and then io.EOF; once it
// is closed (or its listener is), Read returns an error satisfying
// errors.Is(err, net.ErrClosed). After the read deadline it returns an
// error satisfying errors.Is(err, os.ErrDeadlineExceeded).
func (s *UDPSession) Read(b []byte) (int, error) {
	if isClosed(s.done) {
		return s.readEnded(b)
	}
	if s.rd.passed() {
		return 0, s.opError("read", os.ErrDeadlineExceeded)
	}
	select {
	case d := <-s.queue:
		s.dequeued(d)
		return copy(b, d), nil
	case <-s.done:
		return s.readEnded(b)
	case <-s.rd.done():
		return 0, s.opError("read", os.ErrDeadlineExceeded)
	}
}

// readEnded is Read on an ended session.
func (s *UDPSession) readEnded(b []byte) (int, error) {
	if s.err != io.EOF {
		return 0, s.opError("read", s.err)
	}
	select {
	case d := <-s.queue:
		return copy(b, d), nil
	default:
		return 0, io.EOF
	}
}

// Write sends b to the client as one datagram whose source is the original
// destination. It fails once the session has ended, or once the write
// deadline has passed; it does not otherwise wait.
func (s *UDPSession) Write(b []byte) (int, error) {
	if isClosed(s.done) {
		err := s.err
		if err == io.EOF {
			err = errExpired
		}
		return 0, s.opError("write", err)
	}
	if s.wd.passed() {
		return 0, s.opError("write", os.ErrDeadlineExceeded)
	}
	var (
		n   int
		err error
	)
	if s.key.dst.Port() == s.l.laddr.Port() {
		// Same port as the listener: its socket can send, with PKTINFO
		// choosing the source address.
		n, _, err = s.l.conn.WriteMsgUDPAddrPort(b, s.oob, s.key.client)
	} else {
		var conn *net.UDPConn
		if conn, err = s.l.senderFor(s); err == nil {
			n, err = conn.WriteToUDPAddrPort(b, s.key.client)
		}
	}
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		return n, s.opError("write", err)
	}
	s.touch()
	return n, nil
}

// errExpired is the error of a Write on an expired session.
var errExpired = fmt.Errorf("session expired: %w", net.ErrClosed)

func (s *UDPSession) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: s.local, Addr: s.remote, Err: err}
}

// Close ends the session and forgets the flow: the client's next datagram
// to the same destination starts a new session. Close may be called more
// than once, and always returns nil.
func (s *UDPSession) Close() error {
	s.l.mu.Lock()
	s.endLocked(net.ErrClosed)
	s.l.mu.Unlock()
	return nil
}

// SetDeadline sets both the read and the write deadline.
func (s *UDPSession) SetDeadline(t time.Time) error {
	s.rd.set(t)
	s.wd.set(t)
	return nil
}

// SetReadDeadline sets the deadline for pending and future Read calls; the
// zero time means none.
func (s *UDPSession) SetReadDeadline(t time.Time) error {
	s.rd.set(t)
	return nil
}

// SetWriteDeadline sets the deadline for future Write calls; the zero time
// means none.
func (s *UDPSession) SetWriteDeadline(t time.Time) error {
	s.wd.set(t)
	return nil
}

// sender is a transparent socket bound to one original destination, for
// replies whose source port differs from the listener's: PKTINFO sets
// only the source address. Sessions to the same destination share it.
type sender struct {
	conn *net.UDPConn
	refs int // sessions that wrote through it and have not ended
}

// senderFor returns the reply socket of s's original destination,
// opening it on first use.
func (l *UDPListener) senderFor(s *UDPSession) (*net.UDPConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.over || l.sessions == nil {
		return nil, net.ErrClosed
	}
	if s.sender {
		return l.senders[s.key.dst].conn, nil
	}
	sd := l.senders[s.key.dst]
	if sd == nil {
		network := "udp4"
		if s.key.dst.Addr().Is6() {
			network = "udp6"
		}
		pc, err := l.openSender(network, s.key.dst)
		if err != nil {
			return nil, fmt.Errorf("open reply socket: %w", err)
		}
		sd = &sender{conn: pc}
		l.senders[s.key.dst] = sd
	}
	sd.refs++
	s.sender = true
	return sd.conn, nil
}

// releaseSenderLocked drops an ended session's hold on its reply socket.
// l.mu must be held.
func (l *UDPListener) releaseSenderLocked(dst netip.AddrPort) {
	sd := l.senders[dst]
	if sd == nil {
		return
	}
	if sd.refs--; sd.refs <= 0 {
		sd.conn.Close()
		delete(l.senders, dst)
	}
}

// openSender opens a transparent UDP socket bound to dst in the
// listener's network namespace, whichever namespace the calling
// goroutine's thread is in: Go moves goroutines between threads, and a
// socket belongs to the namespace of the thread that creates it.
func (l *UDPListener) openSender(network string, dst netip.AddrPort) (*net.UDPConn, error) {
	raw, err := l.conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nsfd int
	var ioErr error
	if err := raw.Control(func(fd uintptr) {
		nsfd, ioErr = unix.IoctlRetInt(int(fd), unix.SIOCGSKNS)
	}); err != nil {
		return nil, err
	}
	if ioErr != nil {
		return nil, os.NewSyscallError("ioctl SIOCGSKNS", ioErr)
	}
	defer unix.Close(nsfd)

	type result struct {
		conn *net.UDPConn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// A thread of its own: if it cannot switch back it is not
		// unlocked, so the runtime discards it with the goroutine.
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: os.NewSyscallError("open own netns", err)}
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: os.NewSyscallError("setns", err)}
			runtime.UnlockOSThread()
			return
		}
		lc := net.ListenConfig{Control: control(false)}
		pc, err := lc.ListenPacket(context.Background(), network, dst.String())
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		if err != nil {
			ch <- result{err: err}
			return
		}
		ch <- result{conn: pc.(*net.UDPConn)}
	}()
	r := <-ch
	return r.conn, r.err
}
