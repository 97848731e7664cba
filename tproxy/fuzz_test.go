package tproxy

import (
	"encoding/binary"
	"io"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/testenv"
)

// FuzzUDPDemux delivers crafted datagrams (any client, any original
// destination, any size, in any order) to a listener with small bounds:
// it never panics, and its sessions and queued bytes stay within them.
// Records of the input: client port (2 bytes), destination port (1),
// payload length (2), the payload.
func FuzzUDPDemux(f *testing.F) {
	rec := func(client uint16, dst byte, n uint16) []byte {
		b := binary.BigEndian.AppendUint16(nil, client)
		b = append(b, dst)
		b = binary.BigEndian.AppendUint16(b, n)
		return append(b, make([]byte, n)...)
	}
	f.Add(rec(1000, 1, 10))
	f.Add(append(append(rec(1000, 1, 10), rec(1000, 1, 2000)...), rec(2000, 2, 0)...))
	f.Add(append(rec(1, 0, 3000), rec(65535, 255, 3000)...))
	testenv.RequirePrivileged(f)
	const maxSessions, maxBytes = 8, 4096
	l, err := ListenUDP(f.Context(), netip.MustParseAddrPort("127.0.0.1:0"), UDPOptions{MaxSessions: maxSessions, MaxQueuedBytes: maxBytes})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	// A service that reads some sessions to the end and leaves others.
	go func() {
		for n := 0; ; n++ {
			s, err := l.Accept()
			if err != nil {
				return
			}
			if n%2 == 0 {
				go io.Copy(io.Discard, s)
			}
		}
	}()
	client := netip.MustParseAddr("192.168.5.5")
	f.Fuzz(func(t *testing.T, data []byte) {
		for len(data) >= 5 {
			cport, dport := binary.BigEndian.Uint16(data), uint16(data[2])
			n := int(binary.BigEndian.Uint16(data[3:]))
			data = data[5:]
			n = min(n, len(data), maxDatagram)
			key := flowKey{client: netip.AddrPortFrom(client, cport), dst: netip.AddrPortFrom(netip.MustParseAddr("10.9.0.1"), dport)}
			l.deliver(key, append([]byte(nil), data[:n]...))
			data = data[n:]
			if st := l.Stats(); st.Active > maxSessions || st.QueuedBytes > maxBytes || st.QueuedBytes < 0 {
				t.Fatalf("bounds crossed: %+v", st)
			}
		}
	})
}

// FuzzOrigDst parses any control messages a datagram could carry: no
// panic, and an address only from a well-formed original-destination
// message.
func FuzzOrigDst(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Add(origDstMessage())
	f.Fuzz(func(t *testing.T, oob []byte) {
		if ap, ok := origDst(oob); ok && !ap.IsValid() {
			t.Fatalf("origDst(%x) = %v, true", oob, ap)
		}
	})
}

// The kernel's original-destination message reads back as its address.
func TestOrigDstReadsTheKernelsMessage(t *testing.T) {
	if got, ok := origDst(origDstMessage()); !ok || got != netip.MustParseAddrPort("10.9.0.1:53") {
		t.Errorf("origDst = %v, %v; want 10.9.0.1:53", got, ok)
	}
}

// origDstMessage is IP_ORIGDSTADDR of 10.9.0.1:53, as the kernel writes
// it.
func origDstMessage() []byte {
	cmsg := binary.NativeEndian.AppendUint64(nil, 32)
	cmsg = binary.NativeEndian.AppendUint32(cmsg, unix.SOL_IP)
	cmsg = binary.NativeEndian.AppendUint32(cmsg, unix.IP_ORIGDSTADDR)
	cmsg = binary.NativeEndian.AppendUint16(cmsg, unix.AF_INET)
	cmsg = binary.BigEndian.AppendUint16(cmsg, 53)
	cmsg = append(cmsg, 10, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)
	return cmsg
}
