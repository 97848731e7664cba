package testenv

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// InTimeWait tells whether a /proc/net/tcp or tcp6 table (ReadProcNet)
// holds a socket from local to remote in TIME_WAIT.
func InTimeWait(table []byte, local, remote netip.AddrPort) bool {
	hexAddr := func(ap netip.AddrPort) string {
		// procfs prints each 32-bit word of the address in host order.
		b := ap.Addr().AsSlice()
		var s strings.Builder
		for i := 0; i < len(b); i += 4 {
			fmt.Fprintf(&s, "%08X", binary.NativeEndian.Uint32(b[i:i+4]))
		}
		return fmt.Sprintf("%s:%04X", s.String(), ap.Port())
	}
	return strings.Contains(string(table), hexAddr(local)+" "+hexAddr(remote)+" 06")
}
