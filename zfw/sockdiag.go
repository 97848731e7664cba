package zfw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// sockDiag asks the kernel, over NETLINK_SOCK_DIAG, for one socket by
// its address: an exact lookup, which costs a hash lookup where reading
// /proc/net/tcp walks the whole table. The socket is opened in the
// dataplane's namespace and answers for that namespace.
type sockDiag struct {
	fd int
	// seq numbers the requests, so that an answer to an earlier call
	// that gave up (a receive timed out) is not taken for this one's.
	seq uint32
}

// Sizes of struct inet_diag_req_v2 and struct inet_diag_msg.
const (
	inetDiagReqLen = 56
	inetDiagMsgLen = 72
)

func newSockDiag() (*sockDiag, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	tv := unix.Timeval{Sec: 1}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sock_diag: bind: %w", err)
	}
	return &sockDiag{fd: fd}, nil
}

func (d *sockDiag) close() { unix.Close(d.fd) }

// socketQuery is one socket asked for: the one a flow of proto to addr
// would be delivered to by the kernel's lookup (TCP: the listener; UDP:
// the bound socket).
type socketQuery struct {
	proto uint8
	addr  netip.AddrPort
}

// socketAnswer is a socket found: its inode and owner (inode 0: none).
type socketAnswer struct{ inode, uid uint32 }

// listeners answers the queries, in their order: all sent in one message,
// so that N lookups cost one send and N receives.
func (d *sockDiag) listeners(queries []socketQuery) ([]socketAnswer, error) {
	const msgLen = unix.SizeofNlMsghdr + inetDiagReqLen
	req := make([]byte, msgLen*len(queries))
	ne := binary.NativeEndian
	first := d.seq + 1
	d.seq += uint32(len(queries))
	for i, q := range queries {
		m := req[i*msgLen : (i+1)*msgLen]
		family := uint8(unix.AF_INET)
		if q.addr.Addr().Is6() {
			family = unix.AF_INET6
		}
		ne.PutUint32(m[0:], msgLen)
		ne.PutUint16(m[4:], unix.SOCK_DIAG_BY_FAMILY)
		ne.PutUint16(m[6:], unix.NLM_F_REQUEST)
		ne.PutUint32(m[8:], first+uint32(i))
		r := m[unix.SizeofNlMsghdr:]
		r[0], r[1] = family, q.proto
		ne.PutUint32(r[4:], 0xffffffff) // every state
		id := r[8:]
		a := q.addr.Addr().As16()
		local := a[:]
		if family == unix.AF_INET {
			a4 := q.addr.Addr().As4()
			local = a4[:]
		}
		// The id is read from the local socket's side for TCP (sport,
		// src) and from the remote's for UDP (dport, dst are the
		// socket's own).
		if q.proto == unix.IPPROTO_TCP {
			binary.BigEndian.PutUint16(id[0:], q.addr.Port())
			copy(id[4:20], local)
		} else {
			binary.BigEndian.PutUint16(id[2:], q.addr.Port())
			copy(id[20:36], local)
		}
		ne.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
		ne.PutUint32(id[44:], 0xffffffff)
	}
	if err := unix.Sendto(d.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag: send: %w", err)
	}
	// Each query has one answer: the socket, or an error (ENOENT: none).
	answers := make([]socketAnswer, len(queries))
	buf := make([]byte, 4096)
	var errs []error
	for answered := 0; answered < len(queries); {
		n, _, err := unix.Recvfrom(d.fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag: receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("sock_diag: %w", err)
		}
		for _, m := range msgs {
			i := int(m.Header.Seq - first)
			if i < 0 || i >= len(queries) {
				continue // an answer to an earlier call that gave up
			}
			answered++
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := unix.Errno(-int32(ne.Uint32(m.Data))); errno != 0 && errno != unix.ENOENT {
						errs = append(errs, errno)
					}
				}
			case unix.SOCK_DIAG_BY_FAMILY:
				if len(m.Data) < inetDiagMsgLen {
					return nil, errors.New("sock_diag: short answer")
				}
				answers[i] = socketAnswer{inode: ne.Uint32(m.Data[68:]), uid: ne.Uint32(m.Data[64:])}
			}
		}
	}
	if len(errs) > 0 {
		return answers, fmt.Errorf("sock_diag: %w", errors.Join(errs...))
	}
	return answers, nil
}

// Socket states as sock_diag filters them (bits of 1<<state).
const (
	tcpListen = 10 // TCP_LISTEN
	udpClose  = 7  // TCP_CLOSE: an unconnected UDP socket
)

// sockets calls found for every socket of family and proto in the given
// state, whatever its address: one dump, whose cost is the number of
// such sockets (a listening TCP dump walks only the listening table),
// not the number of ports asked about.
func (d *sockDiag) sockets(family, proto, state uint8, found func(local netip.AddrPort, inode, uid uint32)) error {
	req := make([]byte, unix.SizeofNlMsghdr+inetDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	d.seq++
	seq := d.seq
	ne.PutUint32(req[8:], seq)
	r := req[unix.SizeofNlMsghdr:]
	r[0], r[1] = family, proto
	ne.PutUint32(r[4:], 1<<state)
	if err := unix.Sendto(d.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag dump: send: %w", err)
	}
	buf := make([]byte, 32<<10)
	for {
		n, _, err := unix.Recvfrom(d.fd, buf, 0)
		if err != nil {
			return fmt.Errorf("sock_diag dump: receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("sock_diag dump: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue // an answer to an earlier call that gave up
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := -int32(ne.Uint32(m.Data)); errno != 0 {
						return fmt.Errorf("sock_diag dump: %w", unix.Errno(errno))
					}
				}
				return nil
			case unix.SOCK_DIAG_BY_FAMILY:
				if len(m.Data) < inetDiagMsgLen {
					return errors.New("sock_diag dump: short answer")
				}
				// struct inet_diag_msg: the id's sport and src are the
				// socket's own address for TCP and UDP alike.
				port := binary.BigEndian.Uint16(m.Data[4:])
				var addr netip.Addr
				if m.Data[0] == unix.AF_INET {
					addr = netip.AddrFrom4([4]byte(m.Data[8:12]))
				} else {
					addr = netip.AddrFrom16([16]byte(m.Data[8:24]))
				}
				found(netip.AddrPortFrom(addr, port), ne.Uint32(m.Data[68:]), ne.Uint32(m.Data[64:]))
			}
		}
	}
}

// probe checks that lookups answer in this namespace: it looks up a
// listener of its own. Without inet_diag (tcp_diag, udp_diag) every
// lookup would say "no such socket". The calling thread must be in the
// namespace.
func (d *sockDiag) probe() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sock_diag probe: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("sock_diag probe: %w", err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		return fmt.Errorf("sock_diag probe: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("sock_diag probe: %w", err)
	}
	port := uint16(sa.(*unix.SockaddrInet4).Port)
	found, err := d.listeners([]socketQuery{{unix.IPPROTO_TCP, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}})
	if err != nil {
		return fmt.Errorf("sock_diag probe: %w", err)
	}
	if found[0].inode == 0 {
		return errors.New("sock_diag probe: no inode")
	}
	return nil
}
