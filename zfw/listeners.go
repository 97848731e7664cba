package zfw

import (
	"bufio"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/policy"
)

// listenerRetry is how long a port whose listener was not found is left
// before it is looked for again: Register may come before the listener
// opens, and a search is not free (a lookup or a listing of sockets).
const listenerRetry = time.Second

// retryEvery is how often the ports whose listener was not found are
// looked at again (each at most once a listenerRetry).
const retryEvery = 100 * time.Millisecond

// handOverListeners puts the TPROXY listeners of the rules' ports into
// listener_map. There steer finds them for the intercepts registered
// through the Go API, which are delivered to no other socket (see
// bpf/steer.h), and zfw_sk_lookup for a SYN that an old socket of its
// tuple let go (bpf/sk_lookup.h). A listener is a socket of the rule's
// protocol on the loopback address of its family at its port (listening,
// for TCP): for an intercept, one this process opened (a tunneler built
// on zfw opens its own); for a rule that came another way (zfw -I from
// OpenZiti's router, which opens its listeners itself), one this process
// or another holds, transparent (IP_TRANSPARENT) and owned by root or by
// this process's user, taken with pidfd_getfd. A port whose listener is
// not found is looked for again by the retry loop (retryHandOver, every retryEvery), at
// most once a listenerRetry. f.mu must be held.
func (f *Firewall) handOverListeners(rules []*policy.Rule) {
	if f.dp == nil || f.opts.RulesOnly {
		return
	}
	keys := make(map[bpfobj.ZfwListenerKey]bool)
	for _, r := range rules {
		if r.Action != policy.ActionTProxy {
			continue
		}
		k := bpfobj.ZfwListenerKey{Port: r.TProxyPort, Family: 4, Proto: r.Proto}
		if r.Dst.Addr().Is6() {
			k.Family = 6
		}
		keys[k] = keys[k] || !r.Intercept
	}
	f.handOver(keys, time.Now(), false)
}

// retryHandOver looks again for the listeners not found before (a
// listener may open after its rules, or a change may have left its ports
// to the retry).
//
// It walks the ports missed only when the first of them is due again
// (f.nextRetry), so a firewall with many ports without a listener pays
// for one walk a listenerRetry, not one a tick; a port no rule steers to
// any more leaves the walk for good.
func (f *Firewall) retryHandOver() {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.closed || len(f.listenerMissed) == 0 || now.Before(f.nextRetry) {
		return
	}
	keys := make(map[bpfobj.ZfwListenerKey]bool)
	next := now.Add(listenerRetry) // when the ports retried now are due
	for k, m := range f.listenerMissed {
		if !f.tbl.Steers(k.Port, k.Proto) {
			delete(f.listenerMissed, k)
			continue
		}
		if due := m.at.Add(listenerRetry); now.Before(due) {
			next = minTime(next, due)
			continue
		}
		keys[k] = m.foreign
	}
	f.nextRetry = next
	if len(keys) > 0 {
		f.handOver(keys, now, true)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// listenerMiss is a listener looked for and not found.
type listenerMiss struct {
	at      time.Time
	foreign bool // another process's may do
}

// handOver puts the listeners of keys (true: another process's may do)
// into listener_map, but for those there already. A key missed before is
// looked for again only by the retry (retry set), and not within
// listenerRetry of its last miss: so a change pays for a search only for
// a port it is the first to name, however many rules share the port.
func (f *Firewall) handOver(keys map[bpfobj.ZfwListenerKey]bool, now time.Time, retry bool) {
	m := f.dp.Objects().ListenerMap
	if f.listenerMissed == nil {
		f.listenerMissed = make(map[bpfobj.ZfwListenerKey]listenerMiss)
		f.listenerHanded = make(map[bpfobj.ZfwListenerKey]struct{})
	}
	inMap := func(k bpfobj.ZfwListenerKey) bool {
		var cookie uint64
		if m.Lookup(&k, &cookie) != nil {
			delete(f.listenerHanded, k)
			return false
		}
		delete(f.listenerMissed, k)
		f.listenerHanded[k] = struct{}{}
		return true
	}
	want := make(map[bpfobj.ZfwListenerKey]bool)
	for k, foreign := range keys {
		if miss, ok := f.listenerMissed[k]; ok && (!retry || now.Before(miss.at.Add(listenerRetry))) {
			continue
		}
		// A port handed over before most likely still is: one lookup
		// spares asking the namespace.
		if _, ok := f.listenerHanded[k]; ok && inMap(k) {
			continue
		}
		want[k] = foreign
	}
	if len(want) == 0 {
		return
	}
	// What the namespace holds on those ports: most often
	// nothing (a port whose listener is not open yet), and then no
	// descriptor needs reading.
	candidates := f.socketsFor(want)
	open := make(map[bpfobj.ZfwListenerKey]bool, len(candidates))
	for _, c := range candidates {
		open[c.key] = true
	}
	for k, foreign := range want {
		// A port without a socket has none in listener_map either (a
		// socket leaves it as it closes); one with a socket may be
		// there already, put by this process or by one before it.
		switch {
		case !open[k]:
			f.missed(k, now, foreign)
			delete(want, k)
		case inMap(k):
			delete(want, k)
		}
	}
	if len(want) == 0 {
		return
	}
	put := func(k bpfobj.ZfwListenerKey, fd int) bool {
		if err := m.Update(&k, uint64(fd), ebpf.UpdateAny); err != nil {
			f.log.WithError(err).WithField("port", k.Port).Debug("hand the listener over to listener_map")
			return false
		}
		delete(f.listenerMissed, k)
		f.listenerHanded[k] = struct{}{}
		delete(want, k)
		return true
	}
	for fd, k := range ownListeners(candidates) {
		if _, ok := want[k]; ok {
			put(k, fd)
		}
	}
	foreign := make(map[string]bpfobj.ZfwListenerKey)
	for inode, c := range candidates {
		if want[c.key] && c.rootOrOurs {
			foreign[inode] = c.key
		}
	}
	if len(foreign) > 0 {
		for k, sock := range foreignListeners(foreign) {
			fd, err := sock.dup()
			if err != nil {
				continue
			}
			if transparent(fd, k.Family) {
				put(k, fd)
			} else {
				f.log.WithFields(map[string]any{"port": k.Port, "pid": sock.pid}).Warn("a listener that is not transparent holds a TPROXY port: not handed over")
			}
			unix.Close(fd)
		}
	}
	for k, foreign := range want {
		f.missed(k, now, foreign)
	}
}

// missed records that k's listener was looked for at now and not found,
// for the retry. f.mu must be held.
func (f *Firewall) missed(k bpfobj.ZfwListenerKey, now time.Time, foreign bool) {
	f.listenerMissed[k] = listenerMiss{at: now, foreign: foreign}
	if due := now.Add(listenerRetry); f.nextRetry.IsZero() || due.Before(f.nextRetry) {
		f.nextRetry = due
	}
}

// transparent reports whether the socket fd may receive other hosts'
// traffic (IP_TRANSPARENT, IPV6_TRANSPARENT), as a TPROXY listener does.
func transparent(fd int, family uint8) bool {
	level, opt := unix.SOL_IP, unix.IP_TRANSPARENT
	if family == 6 {
		level, opt = unix.SOL_IPV6, unix.IPV6_TRANSPARENT
	}
	v, err := unix.GetsockoptInt(fd, level, opt)
	return err == nil && v == 1
}

// ownListeners returns this process's descriptors of the candidate
// sockets (by "socket:[inode]"), keyed as listener_map keys them, once
// each is checked: TCP listening on a loopback address, or UDP bound to
// one and not connected.
func ownListeners(candidates map[string]candidate) map[int]bpfobj.ZfwListenerKey {
	out := make(map[int]bpfobj.ZfwListenerKey)
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return out
	}
	for _, e := range entries {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue
		}
		if _, ok := candidates[target]; !ok {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if k, ok := listenerKey(fd); ok {
			out[fd] = k
		}
	}
	return out
}

// listenerKey checks that fd is a TPROXY listener candidate and returns
// its listener_map key.
func listenerKey(fd int) (bpfobj.ZfwListenerKey, bool) {
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return bpfobj.ZfwListenerKey{}, false
	}
	switch proto {
	case unix.IPPROTO_TCP:
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
			return bpfobj.ZfwListenerKey{}, false
		}
	case unix.IPPROTO_UDP:
		if _, err := unix.Getpeername(fd); err == nil {
			return bpfobj.ZfwListenerKey{}, false // connected: a flow's socket
		}
	default:
		return bpfobj.ZfwListenerKey{}, false
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return bpfobj.ZfwListenerKey{}, false
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		if netip.AddrFrom4(sa.Addr) == netip.MustParseAddr("127.0.0.1") {
			return bpfobj.ZfwListenerKey{Port: uint16(sa.Port), Family: 4, Proto: uint8(proto)}, true
		}
	case *unix.SockaddrInet6:
		if netip.AddrFrom16(sa.Addr) == netip.IPv6Loopback() {
			return bpfobj.ZfwListenerKey{Port: uint16(sa.Port), Family: 6, Proto: uint8(proto)}, true
		}
	}
	return bpfobj.ZfwListenerKey{}, false
}

// foreignSocket is a descriptor of another process.
type foreignSocket struct{ pid, fd int }

// dup takes a copy of the descriptor into this process (pidfd_getfd:
// Linux 5.6, and the right to ptrace the process, which root has).
func (s foreignSocket) dup() (int, error) {
	pidfd, err := unix.PidfdOpen(s.pid, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pidfd)
	return unix.PidfdGetfd(pidfd, s.fd, 0)
}

// candidate is a socket the namespace holds on a wanted port.
type candidate struct {
	key bpfobj.ZfwListenerKey
	// rootOrOurs: owned by root or by this process's user, as another
	// process's socket must be to be handed over.
	rootOrOurs bool
}

// socketsFor returns the sockets of the dataplane's namespace that the
// kernel would deliver a flow to at the loopback address and port of
// each key, by "socket:[inode]", asked of sock_diag: an exact lookup a
// key for a few keys, a listing for many.
func (f *Firewall) socketsFor(keys map[bpfobj.ZfwListenerKey]bool) map[string]candidate {
	out := make(map[string]candidate)
	if f.diag == nil && !f.noDiag {
		var d *sockDiag
		err := f.dp.InNetns(func() error {
			var err error
			d, err = newSockDiag()
			if err == nil {
				if err = d.probe(); err != nil {
					d.close()
				}
			}
			return err
		})
		if err != nil {
			// A kernel without inet_diag (a module, maybe not loaded):
			// read /proc/net, which is slower.
			f.log.WithError(err).Info("sock_diag does not answer here: TPROXY listeners are looked for in /proc/net")
			f.noDiag = true
		} else {
			f.diag = d
		}
	}
	if f.noDiag {
		return f.socketsFromProc(keys)
	}
	add := func(k bpfobj.ZfwListenerKey, inode, uid uint32) {
		out["socket:["+strconv.FormatUint(uint64(inode), 10)+"]"] = candidate{key: k, rootOrOurs: uid == 0 || int(uid) == os.Geteuid()}
	}
	if len(keys) <= lookupsAtMost {
		asked := make([]bpfobj.ZfwListenerKey, 0, len(keys))
		queries := make([]socketQuery, 0, len(keys))
		for k := range keys {
			asked = append(asked, k)
			queries = append(queries, socketQuery{k.Proto, netip.AddrPortFrom(loopback(k.Family), k.Port)})
		}
		found, err := f.diag.listeners(queries)
		if err != nil {
			f.log.WithError(err).Debug("look TPROXY listeners up")
		}
		for i, a := range found {
			if a.inode != 0 {
				add(asked[i], a.inode, a.uid)
			}
		}
		return out
	}
	// Many ports (the retry of every port without a listener, a large
	// Sync): one dump per family and protocol asked about costs what the
	// namespace's listeners number, where a lookup each would cost what
	// the ports number, every second.
	kinds := make(map[[2]uint8]bool)
	for k := range keys {
		kinds[[2]uint8{k.Family, k.Proto}] = true
	}
	for kind := range kinds {
		family, proto := kind[0], kind[1]
		af, state := uint8(unix.AF_INET), uint8(tcpListen)
		if family == 6 {
			af = unix.AF_INET6
		}
		if proto == unix.IPPROTO_UDP {
			state = udpClose
		}
		err := f.diag.sockets(af, proto, state, func(local netip.AddrPort, inode, uid uint32) {
			k := bpfobj.ZfwListenerKey{Port: local.Port(), Family: family, Proto: proto}
			if _, ok := keys[k]; ok && local.Addr() == loopback(family) && inode != 0 {
				add(k, inode, uid)
			}
		})
		if err != nil {
			f.log.WithError(err).Debug("list the namespace's sockets")
		}
	}
	return out
}

// lookupsAtMost is the number of ports up to which socketsFor looks each
// up rather than listing the namespace's sockets.
const lookupsAtMost = 16

// loopback is the loopback address of family (4 or 6), where TPROXY
// listeners listen.
func loopback(family uint8) netip.Addr {
	if family == 6 {
		return netip.IPv6Loopback()
	}
	return netip.MustParseAddr("127.0.0.1")
}

// foreignListeners finds the descriptors other processes hold of the
// sockets inodes names ("socket:[inode]"), in /proc/*/fd.
func foreignListeners(inodes map[string]bpfobj.ZfwListenerKey) map[bpfobj.ZfwListenerKey]foreignSocket {
	out := make(map[bpfobj.ZfwListenerKey]foreignSocket)
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/[0-9]*")
	self := strconv.Itoa(os.Getpid())
	for _, path := range fds {
		target, err := os.Readlink(path)
		if err != nil {
			continue
		}
		k, ok := inodes[target]
		if !ok {
			continue
		}
		parts := strings.Split(path, "/") // "", proc, pid, fd, n
		if len(parts) != 5 || parts[2] == self {
			continue
		}
		pid, err1 := strconv.Atoi(parts[2])
		fd, err2 := strconv.Atoi(parts[4])
		if err1 == nil && err2 == nil {
			out[k] = foreignSocket{pid: pid, fd: fd}
		}
	}
	return out
}

// socketsFromProc is socketsFor from /proc/net/tcp, tcp6, udp and udp6.
func (f *Firewall) socketsFromProc(keys map[bpfobj.ZfwListenerKey]bool) map[string]candidate {
	out := make(map[string]candidate)
	f.dp.InNetns(func() error {
		for _, src := range []struct {
			file, lo, state string
			family, proto   uint8
		}{
			{"tcp", "0100007F", "0A", 4, unix.IPPROTO_TCP}, // TCP_LISTEN
			{"tcp6", "00000000000000000000000001000000", "0A", 6, unix.IPPROTO_TCP},
			{"udp", "0100007F", "07", 4, unix.IPPROTO_UDP}, // TCP_CLOSE: unconnected
			{"udp6", "00000000000000000000000001000000", "07", 6, unix.IPPROTO_UDP},
		} {
			readProcNet("/proc/thread-self/net/"+src.file, src.lo, src.state, func(inode string, port uint16, uid string) {
				k := bpfobj.ZfwListenerKey{Port: port, Family: src.family, Proto: src.proto}
				if _, ok := keys[k]; ok {
					out["socket:["+inode+"]"] = candidate{key: k, rootOrOurs: uid == "0" || uid == strconv.Itoa(os.Geteuid())}
				}
			})
		}
		return nil
	})
	return out
}

// readProcNet calls found for each socket of a /proc/net/{tcp,udp}[6]
// file in state on the address lo (both as the file writes them).
func readProcNet(path, lo, state string, found func(inode string, port uint16, uid string)) {
	file, err := os.Open(path)
	if err != nil {
		return
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != state {
			continue
		}
		addr, port, ok := strings.Cut(fields[1], ":")
		if !ok || addr != lo {
			continue
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil {
			continue
		}
		found(fields[9], uint16(p), fields[7])
	}
}
