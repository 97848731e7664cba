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
// opens, and a search is not free (it reads /proc).
const listenerRetry = time.Second

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
// not found is looked for again after listenerRetry. f.mu must be held.
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
	f.handOver(keys, time.Now())
}

// retryHandOver looks again for the listeners not found before (the
// collector's tick calls it: a listener may open after its rules).
func (f *Firewall) retryHandOver() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.listenerMissed) == 0 {
		return
	}
	keys := make(map[bpfobj.ZfwListenerKey]bool, len(f.listenerMissed))
	for k, m := range f.listenerMissed {
		keys[k] = m.foreign
	}
	f.handOver(keys, time.Now())
}

// listenerMiss is a listener looked for and not found.
type listenerMiss struct {
	at      time.Time
	foreign bool // another process's may do
}

// handOver puts the listeners of keys (true: another process's may do)
// into listener_map, but for those there already and those missed less
// than listenerRetry ago.
func (f *Firewall) handOver(keys map[bpfobj.ZfwListenerKey]bool, now time.Time) {
	m := f.dp.Objects().ListenerMap
	want := make(map[bpfobj.ZfwListenerKey]bool)
	for k, foreign := range keys {
		if miss, ok := f.listenerMissed[k]; ok && now.Before(miss.at.Add(listenerRetry)) {
			continue
		}
		var cookie uint64
		if m.Lookup(&k, &cookie) == nil {
			delete(f.listenerMissed, k)
			continue // handed over already, and open
		}
		want[k] = foreign
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
		delete(want, k)
		return true
	}
	for fd, k := range ownListeners() {
		if _, ok := want[k]; ok {
			put(k, fd)
		}
	}
	foreign := make(map[bpfobj.ZfwListenerKey]bool)
	for k, ok := range want {
		if ok {
			foreign[k] = true
		}
	}
	if len(foreign) > 0 {
		for k, sock := range f.foreignListeners(foreign) {
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
		if f.listenerMissed == nil {
			f.listenerMissed = make(map[bpfobj.ZfwListenerKey]listenerMiss)
		}
		f.listenerMissed[k] = listenerMiss{at: now, foreign: foreign}
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

// ownListeners returns this process's TPROXY listener candidates, by
// descriptor, keyed as listener_map keys them: TCP sockets listening on
// a loopback address, and UDP sockets bound to one and not connected.
func ownListeners() map[int]bpfobj.ZfwListenerKey {
	out := make(map[int]bpfobj.ZfwListenerKey)
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return out
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.HasPrefix(target, "socket:") {
			continue
		}
		proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
		if err != nil {
			continue
		}
		switch proto {
		case unix.IPPROTO_TCP:
			if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
				continue
			}
		case unix.IPPROTO_UDP:
			if _, err := unix.Getpeername(fd); err == nil {
				continue // connected: a flow's socket, not a listener
			}
		default:
			continue
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			continue
		}
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			if netip.AddrFrom4(sa.Addr) == netip.MustParseAddr("127.0.0.1") {
				out[fd] = bpfobj.ZfwListenerKey{Port: uint16(sa.Port), Family: 4, Proto: uint8(proto)}
			}
		case *unix.SockaddrInet6:
			if netip.AddrFrom16(sa.Addr) == netip.IPv6Loopback() {
				out[fd] = bpfobj.ZfwListenerKey{Port: uint16(sa.Port), Family: 6, Proto: uint8(proto)}
			}
		}
	}
	return out
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

// foreignListeners finds, in the dataplane's namespace, the listeners of
// keys that other processes hold, owned by root or by this process's
// user: their inodes from /proc/net/tcp, tcp6, udp and udp6, then the
// descriptors that name those inodes in /proc/*/fd.
func (f *Firewall) foreignListeners(keys map[bpfobj.ZfwListenerKey]bool) map[bpfobj.ZfwListenerKey]foreignSocket {
	inodes := make(map[string]bpfobj.ZfwListenerKey)
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
			for inode, port := range socketsOn("/proc/thread-self/net/"+src.file, src.lo, src.state) {
				if k := (bpfobj.ZfwListenerKey{Port: port, Family: src.family, Proto: src.proto}); keys[k] {
					inodes["socket:["+inode+"]"] = k
				}
			}
		}
		return nil
	})
	out := make(map[bpfobj.ZfwListenerKey]foreignSocket)
	if len(inodes) == 0 {
		return out
	}
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

// socketsOn reads a /proc/net/{tcp,udp}[6] file for sockets in state on
// the address lo (both as the file writes them) owned by root or by this
// process's user, and returns their ports by inode.
func socketsOn(path, lo, state string) map[string]uint16 {
	out := make(map[string]uint16)
	file, err := os.Open(path)
	if err != nil {
		return out
	}
	defer file.Close()
	uid := strconv.Itoa(os.Geteuid())
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != state || (fields[7] != "0" && fields[7] != uid) {
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
		out[fields[9]] = uint16(p)
	}
	return out
}
