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

// handOverListeners puts the TPROXY listeners of the rules' TCP ports
// into listener_map, where zfw_sk_lookup finds them for a SYN that an old
// socket of its tuple let go (see bpf/sk_lookup.h). A listener is a TCP
// socket listening on the loopback address of the rule's family at its
// port: one this process opened (a tunneler built on zfw opens its own),
// or else one another process holds (OpenZiti's router, whose rules come
// through zfw -I), taken with pidfd_getfd. A port whose listener is not
// found is looked for again after listenerRetry; its SYNs meanwhile take
// the slower way. f.mu must be held.
func (f *Firewall) handOverListeners(rules []*policy.Rule) {
	if f.dp == nil || f.opts.RulesOnly {
		return
	}
	keys := make(map[bpfobj.ZfwListenerKey]bool)
	for _, r := range rules {
		if r.Action != policy.ActionTProxy || r.Proto != policy.ProtoTCP {
			continue
		}
		k := bpfobj.ZfwListenerKey{Port: r.TProxyPort, Family: 4}
		if r.Dst.Addr().Is6() {
			k.Family = 6
		}
		keys[k] = true
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
	for k := range f.listenerMissed {
		keys[k] = true
	}
	f.handOver(keys, time.Now())
}

// handOver puts the listeners of keys into listener_map, but for those
// there already and those missed less than listenerRetry ago.
func (f *Firewall) handOver(keys map[bpfobj.ZfwListenerKey]bool, now time.Time) {
	m := f.dp.Objects().ListenerMap
	want := make(map[bpfobj.ZfwListenerKey]bool)
	for k := range keys {
		if now.Before(f.listenerMissed[k].Add(listenerRetry)) {
			continue
		}
		var cookie uint64
		if m.Lookup(&k, &cookie) == nil {
			delete(f.listenerMissed, k)
			continue // handed over already, and open
		}
		want[k] = true
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
		return true
	}
	for fd, k := range ownListeners() {
		if want[k] && put(k, fd) {
			delete(want, k)
		}
	}
	if len(want) > 0 {
		for k, sock := range f.foreignListeners(want) {
			if fd, err := sock.dup(); err == nil {
				if put(k, fd) {
					delete(want, k)
				}
				unix.Close(fd)
			}
		}
	}
	for k := range want {
		if f.listenerMissed == nil {
			f.listenerMissed = make(map[bpfobj.ZfwListenerKey]time.Time)
		}
		f.listenerMissed[k] = now
	}
}

// ownListeners returns this process's TCP sockets listening on a loopback
// address, by descriptor, keyed as listener_map keys them.
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
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
			continue
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil || v != unix.IPPROTO_TCP {
			continue
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			continue
		}
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			if netip.AddrFrom4(sa.Addr) == netip.MustParseAddr("127.0.0.1") {
				out[fd] = bpfobj.ZfwListenerKey{Port: uint16(sa.Port), Family: 4}
			}
		case *unix.SockaddrInet6:
			if netip.AddrFrom16(sa.Addr) == netip.IPv6Loopback() {
				out[fd] = bpfobj.ZfwListenerKey{Port: uint16(sa.Port), Family: 6}
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
// keys that other processes hold: their inodes from /proc/net/tcp and
// tcp6, then the descriptors that name those inodes in /proc/*/fd.
func (f *Firewall) foreignListeners(keys map[bpfobj.ZfwListenerKey]bool) map[bpfobj.ZfwListenerKey]foreignSocket {
	inodes := make(map[string]bpfobj.ZfwListenerKey)
	f.dp.InNetns(func() error {
		for _, family := range []uint8{4, 6} {
			name, lo := "tcp", "0100007F"
			if family == 6 {
				name, lo = "tcp6", "00000000000000000000000001000000"
			}
			for inode, port := range listeningOn("/proc/thread-self/net/"+name, lo) {
				if k := (bpfobj.ZfwListenerKey{Port: port, Family: family}); keys[k] {
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

// listeningOn reads a /proc/net/tcp file for sockets in LISTEN on the
// address lo (as the file writes it), and returns their ports by inode.
func listeningOn(path, lo string) map[string]uint16 {
	out := make(map[string]uint16)
	file, err := os.Open(path)
	if err != nil {
		return out
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" { // TCP_LISTEN
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
