package zfw

import (
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/policy"
)

// handOverListeners puts the TPROXY listeners of the rules' TCP ports
// into listener_map, where zfw_sk_lookup finds them for a SYN that an old
// socket of its tuple let go (see bpf/sk_lookup.h). The listeners are the
// sockets this process opened (a tunneler built on zfw opens its own): a
// TCP socket listening on the loopback address of the rule's family at
// its port. A port whose listener is elsewhere (another process, or none
// yet) is left out; its SYNs then take the slower way, as before. f.mu
// must be held.
func (f *Firewall) handOverListeners(rules []*policy.Rule) {
	if f.dp == nil {
		return
	}
	m := f.dp.Objects().ListenerMap
	var want []bpfobj.ZfwListenerKey
	for _, r := range rules {
		if r.Action != policy.ActionTProxy || r.Proto != policy.ProtoTCP {
			continue
		}
		k := bpfobj.ZfwListenerKey{Port: r.TProxyPort, Family: 4}
		if r.Dst.Addr().Is6() {
			k.Family = 6
		}
		var cookie uint64
		if err := m.Lookup(&k, &cookie); err == nil {
			continue // handed over already, and open
		}
		want = append(want, k)
	}
	if len(want) == 0 {
		return
	}
	for fd, k := range ownListeners() {
		for _, w := range want {
			if w != k {
				continue
			}
			if err := m.Update(&k, uint64(fd), ebpf.UpdateAny); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
				f.log.WithError(err).WithField("port", k.Port).Debug("hand the listener over to listener_map")
			}
		}
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
