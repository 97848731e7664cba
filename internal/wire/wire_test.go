package wire

import (
	"net/netip"
	"testing"

	"github.com/zfw-go/zfw/internal/policy"
)

func TestAddrRoundTrip(t *testing.T) {
	for _, s := range []string{"10.1.2.3", "0.0.0.0", "255.255.255.255", "fd00::1", "::", "2001:db8::ff"} {
		a := netip.MustParseAddr(s)
		fam := uint8(6)
		if a.Is4() {
			fam = 4
		}
		if got := AddrFrom(Addr(a), fam); got != a {
			t.Errorf("%s -> %v", s, got)
		}
	}
}

func TestPort16IsWireOrder(t *testing.T) {
	var b [2]byte
	p := Port16(0x1f90) // 8080
	b[0], b[1] = byte(p), byte(p>>8)
	if b[0] != 0x1f || b[1] != 0x90 {
		t.Errorf("Port16(8080) bytes % x, want 1f 90", b)
	}
	if PortFrom16(p) != 8080 {
		t.Errorf("round trip %d", PortFrom16(p))
	}
}

func TestRecordRoundTrip(t *testing.T) {
	in := policy.Rule{
		ID: 7, Seq: 99, ServiceID: "svc-1", ServiceName: "web", Intercept: true,
		Proto: policy.ProtoUDP, Dst: netip.MustParsePrefix("fd00:9::/64"), Src: netip.MustParsePrefix("fd00:7::/48"),
		PortLow: 53, PortHigh: 54, Action: policy.ActionTProxy, TProxyPort: 7000, Interfaces: []int{3, 9},
	}
	rec := Record(&in)
	out := RuleFrom(7, &rec)
	if out.ServiceID != in.ServiceID || out.ServiceName != in.ServiceName || out.Dst != in.Dst || out.Src != in.Src ||
		out.Seq != in.Seq || out.Proto != in.Proto || out.PortLow != in.PortLow || out.PortHigh != in.PortHigh ||
		out.Action != in.Action || out.TProxyPort != in.TProxyPort || !out.Intercept || len(out.Interfaces) != 2 {
		t.Errorf("round trip:\n in  %+v\n out %+v", in, out)
	}
	e := RangeEntry(&in)
	if e.SrcLen != 48 || e.Flags == 0 || e.RuleId != 7 || e.PortLow != 53 {
		t.Errorf("range entry %+v", e)
	}
}
