// Package tproxy opens the transparent sockets that zfw steers intercepted
// traffic into.
//
// zfw's eBPF program hands each intercepted packet, still addressed to the
// service (say 10.9.0.5:8080), to a listener bound on the loopback address
// and a port of the caller's choice. For that to work the listener must be
// transparent (IP_TRANSPARENT, or IPV6_TRANSPARENT for IPv6): the kernel
// then accepts connections and datagrams whose destination is not one of
// the host's addresses and lets the socket answer from that address.
//
// ListenTCP returns a net.Listener whose connections report the original
// destination as their LocalAddr. ListenUDP returns a UDPListener that
// reads every datagram, learns its original destination from the
// IP_ORIGDSTADDR (IPV6_ORIGDSTADDR) control message, and groups datagrams
// into sessions, one per client and original destination; a session
// answers its client from the original destination.
//
// Opening a transparent socket needs CAP_NET_ADMIN (in practice, root).
package tproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenNetwork chooses the network for net.ListenConfig: an IPv4 address
// (or an IPv4-mapped IPv6 one) binds an AF_INET socket, the IPv6
// unspecified address binds a dual-stack AF_INET6 socket, and any other
// IPv6 address an IPv6-only one. It returns the address to bind, unmapped.
func listenNetwork(proto string, addr netip.AddrPort) (string, netip.AddrPort) {
	a := addr.Addr().Unmap()
	addr = netip.AddrPortFrom(a, addr.Port())
	switch {
	case a.Is4():
		return proto + "4", addr
	case a.IsUnspecified():
		return proto, addr
	default:
		return proto + "6", addr
	}
}

// errInvalidAddr is returned for a zero netip.AddrPort.
var errInvalidAddr = errors.New("invalid address (zero netip.AddrPort)")

// listenError formats an error of ListenTCP or ListenUDP. Errors of the net
// package already name the operation, network and address; others get
// them here.
func listenError(network string, addr netip.AddrPort, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return fmt.Errorf("tproxy: %w", err)
	}
	if !addr.IsValid() {
		return fmt.Errorf("tproxy: listen %s: %w", network, err)
	}
	return fmt.Errorf("tproxy: listen %s %s: %w", network, addr, err)
}

// control returns a net.ListenConfig Control hook that makes the socket
// transparent and reusable and, for UDP, asks for the original destination
// of every datagram.
func control(udp bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var opErr error
		err := c.Control(func(fd uintptr) {
			opErr = setSockopts(int(fd), network[len(network)-1] == '6', udp)
		})
		if err != nil {
			return err
		}
		return opErr
	}
}

// sockopt is one integer socket option set to 1.
type sockopt struct {
	level, name int
	desc        string
}

var (
	optReuseAddr   = sockopt{unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR"}
	optTransparent = sockopt{unix.SOL_IP, unix.IP_TRANSPARENT, "IP_TRANSPARENT"}
	optRecvOrigDst = sockopt{unix.SOL_IP, unix.IP_RECVORIGDSTADDR, "IP_RECVORIGDSTADDR"}

	optTransparent6 = sockopt{unix.SOL_IPV6, unix.IPV6_TRANSPARENT, "IPV6_TRANSPARENT"}
	optRecvOrigDst6 = sockopt{unix.SOL_IPV6, unix.IPV6_RECVORIGDSTADDR, "IPV6_RECVORIGDSTADDR"}
)

// setSockopts sets the options of a transparent socket on fd. An AF_INET6
// UDP socket also asks for IP_ORIGDSTADDR, which a dual-stack socket
// attaches to the IPv4 datagrams it receives.
func setSockopts(fd int, inet6, udp bool) error {
	opts := []sockopt{optReuseAddr}
	switch {
	case !inet6:
		opts = append(opts, optTransparent)
		if udp {
			opts = append(opts, optRecvOrigDst)
		}
	default:
		opts = append(opts, optTransparent6)
		if udp {
			opts = append(opts, optRecvOrigDst6, optRecvOrigDst)
		}
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.name, 1); err != nil {
			return os.NewSyscallError("setsockopt "+o.desc, err)
		}
	}
	return nil
}
