package zfw

import (
	"context"
	"testing"

	"github.com/zfw-go/zfw/internal/packet"
)

// dnp3 builds a DNP3 frame: link header (start, length, control, dst,
// src, crc), transport, application control, function code.
func dnp3(control, fcode uint8) []byte {
	return []byte{0x05, 0x64, 0x0b, control, 0x01, 0x00, 0x02, 0x00, 0xaa, 0xbb, 0xc0, 0xc1, fcode, 0x00}
}

// modbus builds an MBAP header and function code.
func modbus(tid uint16, unit, fcode uint8) []byte {
	return []byte{byte(tid >> 8), byte(tid), 0, 0, 0, 2, unit, fcode}
}

func TestDNP3Filtering(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{OTFiltering: true})
	if err := h.f.OT().AllowDNP3(context.Background(), 1, 129); err != nil { // READ, RESPONSE
		t.Fatal(err)
	}
	master, outstation := addr("10.70.0.1"), addr("10.70.0.2")
	toOutstation := func(payload []byte) uint32 {
		s := packet.Spec{Src: master, Dst: outstation, Proto: packet.TCP, SrcPort: 40000, DstPort: 20000, TCPFlags: packet.ACK | packet.PSH, Payload: payload}
		return h.runFrame(packet.Build(s), 1).code
	}
	fromOutstation := func(payload []byte) uint32 {
		s := packet.Spec{Src: outstation, Dst: master, Proto: packet.TCP, SrcPort: 20000, DstPort: 40000, TCPFlags: packet.ACK | packet.PSH, Payload: payload}
		return h.runFrame(packet.Build(s), 1).code
	}
	cases := []struct {
		name string
		code uint32
		want uint32
	}{
		{"allowed request (READ)", toOutstation(dnp3(0xc4, 1)), tcOK},
		{"disallowed request (WRITE)", toOutstation(dnp3(0xc4, 2)), tcShot},
		{"disallowed request (OPERATE)", toOutstation(dnp3(0xc4, 4)), tcShot},
		{"allowed response, DIR clear", fromOutstation(dnp3(0x44, 129)), tcOK},
		{"response with the DIR bit set", fromOutstation(dnp3(0xc4, 129)), tcShot},
		{"not DNP3: other start bytes", toOutstation([]byte{0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0}), tcOK},
		{"no payload", toOutstation(nil), tcOK},
	}
	for _, c := range cases {
		if c.code != c.want {
			t.Errorf("%s: code %d, want %d", c.name, c.code, c.want)
		}
	}
	if got, _ := h.f.OT().DNP3Allowed(); len(got) != 2 || got[0] != 1 || got[1] != 129 {
		t.Errorf("allowed %v", got)
	}
	if err := h.f.OT().BlockDNP3(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if code := toOutstation(dnp3(0xc4, 1)); code != tcShot {
		t.Errorf("READ after it was blocked: code %d", code)
	}
}

func TestModbusResponsesMustAnswerRequests(t *testing.T) {
	h := newHarness(t)
	h.manage("lo", InterfaceSettings{OTFiltering: true})
	master, slave := addr("10.71.0.1"), addr("10.71.0.2")
	request := func(tid uint16, unit, fcode uint8) {
		h.egress(packet.Spec{Src: master, Dst: slave, Proto: packet.TCP, SrcPort: 40000, DstPort: 502, TCPFlags: packet.ACK | packet.PSH, Payload: modbus(tid, unit, fcode)}, 1)
	}
	response := func(tid uint16, unit, fcode uint8) uint32 {
		s := packet.Spec{Src: slave, Dst: master, Proto: packet.TCP, SrcPort: 502, DstPort: 40000, TCPFlags: packet.ACK | packet.PSH, Payload: modbus(tid, unit, fcode)}
		return h.runFrame(packet.Build(s), 1).code
	}
	if code := response(7, 1, 3); code != tcShot {
		t.Errorf("response with no request: code %d", code)
	}
	request(7, 1, 3)
	if code := response(8, 1, 3); code != tcShot {
		t.Errorf("response to another transaction: code %d", code)
	}
	if code := response(7, 2, 3); code != tcShot {
		t.Errorf("response from another unit: code %d", code)
	}
	if code := response(7, 1, 3); code != tcOK {
		t.Errorf("matching response: code %d", code)
	}
	if code := response(7, 1, 3); code != tcShot {
		t.Errorf("duplicate response: code %d", code)
	}
	request(9, 1, 6)
	if code := response(9, 1, 0x86); code != tcOK {
		t.Errorf("exception response to the request: code %d", code)
	}
	// Plain TCP to and from 502 without a Modbus header is not judged.
	s := packet.Spec{Src: slave, Dst: master, Proto: packet.TCP, SrcPort: 502, DstPort: 40000, TCPFlags: packet.ACK}
	if code := h.runFrame(packet.Build(s), 1).code; code != tcOK {
		t.Errorf("bare ACK from 502: code %d", code)
	}
	if st := h.stats(); st.OTDropped != 4 {
		t.Errorf("OT drops counted %d, want 4", st.OTDropped)
	}
}
