// Package packet builds Ethernet frames for tests and benchmarks that run
// the BPF program on crafted packets: IPv4 (with options and fragments)
// and IPv6 (with extension headers and fragments), TCP and UDP, optional
// VLAN tags.
package packet

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol and extension header numbers.
const (
	TCP      = 6
	UDP      = 17
	ICMP     = 1
	ICMPv6   = 58
	VRRP     = 112
	GRE      = 47
	HopOpts  = 0
	Routing  = 43
	Fragment = 44
	DstOpts  = 60
)

// TCP flags.
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	PSH = 0x08
	ACK = 0x10
)

// Spec describes a frame.
type Spec struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
	// TCPFlags for TCP; zero means SYN.
	TCPFlags uint8
	// Seq and Ack are the TCP sequence and acknowledgement numbers; a
	// zero Seq means 1000.
	Seq, Ack uint32
	// ICMPType for ICMP and ICMPv6 (Proto 1 or 58), as given: 8 and 128
	// are echo requests, 0 and 129 echo replies.
	ICMPType uint8
	// ICMPSeq is the echo sequence number (the id is 1).
	ICMPSeq uint16
	Payload []byte
	// VLANs are 802.1Q tags, outermost first.
	VLANs []uint16
	// IPv4Options are appended to the IPv4 header (padded to 4 bytes).
	IPv4Options []byte
	// IPv6Ext are extension headers (HopOpts, Routing, DstOpts) put
	// before the upper layer, in order; each is 8 bytes.
	IPv6Ext []uint8
	// FragOffset (in 8-byte units) and MoreFragments make a fragment: an
	// IPv4 fragment, or for IPv6 a fragment header after IPv6Ext. A
	// fragment with a non-zero offset carries no L4 header.
	FragOffset    uint16
	MoreFragments bool
	// Fragmented forces an IPv6 fragment header even at offset 0
	// without more fragments (an atomic fragment).
	Fragmented bool
	// NoChecksum leaves a UDP checksum at zero (none, IPv4); otherwise
	// TCP and UDP checksums of unfragmented packets are computed.
	NoChecksum bool
}

func (s Spec) fragment() bool { return s.FragOffset != 0 || s.MoreFragments || s.Fragmented }

// Build returns the frame.
func Build(s Spec) []byte {
	l4 := s.l4()
	if !s.fragment() && (s.Proto == ICMP || s.Proto == ICMPv6) && len(l4) >= 4 {
		if s.Proto == ICMP {
			binary.BigEndian.PutUint16(l4[2:], checksum(l4))
		} else {
			binary.BigEndian.PutUint16(l4[2:], L4Checksum(s.Src, s.Dst, ICMPv6, l4))
		}
	}
	if !s.fragment() && !s.NoChecksum && (s.Proto == TCP || s.Proto == UDP) {
		off := 16
		if s.Proto == UDP {
			off = 6
		}
		binary.BigEndian.PutUint16(l4[off:], L4Checksum(s.Src, s.Dst, s.Proto, l4))
	}
	var ip []byte
	if s.Dst.Is4() {
		ip = s.ipv4(l4)
	} else {
		ip = s.ipv6(l4)
	}
	eth := make([]byte, 0, 14+4*len(s.VLANs)+len(ip))
	eth = append(eth, 0x02, 0, 0, 0, 0, 0x02) // dst MAC
	eth = append(eth, 0x02, 0, 0, 0, 0, 0x01) // src MAC
	for _, v := range s.VLANs {
		eth = binary.BigEndian.AppendUint16(eth, 0x8100)
		eth = binary.BigEndian.AppendUint16(eth, v)
	}
	if s.Dst.Is4() {
		eth = binary.BigEndian.AppendUint16(eth, 0x0800)
	} else {
		eth = binary.BigEndian.AppendUint16(eth, 0x86dd)
	}
	return append(eth, ip...)
}

// l4 is the upper-layer header and payload (none for later fragments).
func (s Spec) l4() []byte {
	if s.FragOffset != 0 {
		return append([]byte(nil), s.Payload...)
	}
	var h []byte
	switch s.Proto {
	case TCP:
		h = make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], s.SrcPort)
		binary.BigEndian.PutUint16(h[2:], s.DstPort)
		seq := s.Seq
		if seq == 0 {
			seq = 1000
		}
		binary.BigEndian.PutUint32(h[4:], seq)
		binary.BigEndian.PutUint32(h[8:], s.Ack)
		h[12] = 5 << 4
		flags := s.TCPFlags
		if flags == 0 {
			flags = SYN
		}
		h[13] = flags
		binary.BigEndian.PutUint16(h[14:], 65535)
	case UDP:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], s.SrcPort)
		binary.BigEndian.PutUint16(h[2:], s.DstPort)
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(s.Payload)))
	case ICMP, ICMPv6:
		h = []byte{s.ICMPType, 0, 0, 0, 0, 1, byte(s.ICMPSeq >> 8), byte(s.ICMPSeq)}
	}
	return append(h, s.Payload...)
}

func (s Spec) ipv4(l4 []byte) []byte {
	opts := append([]byte(nil), s.IPv4Options...)
	for len(opts)%4 != 0 {
		opts = append(opts, 0) // end-of-options padding
	}
	hlen := 20 + len(opts)
	h := make([]byte, hlen, hlen+len(l4))
	h[0] = 0x40 | byte(hlen/4)
	binary.BigEndian.PutUint16(h[2:], uint16(hlen+len(l4)))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	frag := s.FragOffset & 0x1fff
	if s.MoreFragments {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8] = 64
	h[9] = s.Proto
	src, dst := s.Src.As4(), s.Dst.As4()
	copy(h[12:], src[:])
	copy(h[16:], dst[:])
	copy(h[20:], opts)
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	return append(h, l4...)
}

func (s Spec) ipv6(l4 []byte) []byte {
	type ext struct {
		typ  uint8
		body []byte // without the next-header byte
	}
	var exts []ext
	for _, t := range s.IPv6Ext {
		exts = append(exts, ext{t, make([]byte, 7)}) // hdr ext len 0: 8 bytes
	}
	if s.fragment() {
		b := make([]byte, 7)
		fo := s.FragOffset << 3
		if s.MoreFragments {
			fo |= 1
		}
		binary.BigEndian.PutUint16(b[1:], fo)
		binary.BigEndian.PutUint32(b[3:], 0xabcd)
		exts = append(exts, ext{Fragment, b})
	}
	var payload []byte
	for i, e := range exts {
		next := s.Proto
		if i+1 < len(exts) {
			next = exts[i+1].typ
		}
		payload = append(payload, next)
		payload = append(payload, e.body...)
	}
	payload = append(payload, l4...)
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	if len(exts) > 0 {
		h[6] = exts[0].typ
	} else {
		h[6] = s.Proto
	}
	h[7] = 64
	src, dst := s.Src.As16(), s.Dst.As16()
	copy(h[8:], src[:])
	copy(h[24:], dst[:])
	return append(h, payload...)
}

// Checksum is the Internet checksum of b (the complement of its ones'
// complement sum): what goes in a zeroed checksum field.
func Checksum(b []byte) uint16 { return checksum(b) }

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// L4Checksum computes the TCP or UDP checksum of segment (with its
// checksum field zero) between src and dst.
func L4Checksum(src, dst netip.Addr, proto uint8, segment []byte) uint16 {
	var pseudo []byte
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		pseudo = append(append(pseudo, a[:]...), b[:]...)
		pseudo = append(pseudo, 0, proto)
		pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(len(segment)))
	} else {
		a, b := src.As16(), dst.As16()
		pseudo = append(append(pseudo, a[:]...), b[:]...)
		pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(segment)))
		pseudo = append(pseudo, 0, 0, 0, proto)
	}
	c := checksum(append(pseudo, segment...))
	if c == 0 && proto != TCP {
		c = 0xffff
	}
	return c
}

// Valid reports whether an Ethernet frame's IPv4 header checksum and
// TCP/UDP checksum are right (a zero IPv4 UDP checksum counts as right).
// It handles frames Build makes: no VLAN tags, options or extension
// headers.
func Valid(frame []byte) bool {
	ip := frame[14:]
	var src, dst netip.Addr
	var proto uint8
	var seg []byte
	if ip[0]>>4 == 4 {
		hlen := int(ip[0]&0xf) * 4
		if checksum(ip[:hlen]) != 0 {
			return false
		}
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		proto, seg = ip[9], ip[hlen:binary.BigEndian.Uint16(ip[2:])]
	} else {
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		proto, seg = ip[6], ip[40:40+binary.BigEndian.Uint16(ip[4:])]
	}
	switch proto {
	case ICMP:
		return checksum(seg) == 0
	case ICMPv6:
		z := append([]byte(nil), seg...)
		got := binary.BigEndian.Uint16(z[2:])
		z[2], z[3] = 0, 0
		return L4Checksum(src, dst, ICMPv6, z) == got
	}
	off := 16
	if proto == UDP {
		off = 6
		if src.Is4() && binary.BigEndian.Uint16(seg[6:]) == 0 {
			return true
		}
	}
	got := binary.BigEndian.Uint16(seg[off:])
	z := append([]byte(nil), seg...)
	z[off], z[off+1] = 0, 0
	return L4Checksum(src, dst, proto, z) == got
}
