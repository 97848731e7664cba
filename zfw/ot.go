package zfw

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
)

// OT manages industrial-protocol filtering (InterfaceSettings.OTFiltering):
// the DNP3 function codes allowed. Modbus/TCP needs no configuration:
// a response must answer an outstanding request.
type OT struct{ f *Firewall }

// OT returns the industrial-protocol filtering API. It needs the kernel
// dataplane.
func (f *Firewall) OT() *OT { return &OT{f} }

// AllowDNP3 adds DNP3 application function codes to the allow list.
func (o *OT) AllowDNP3(ctx context.Context, codes ...uint8) error {
	return o.change(ctx, codes, true)
}

// BlockDNP3 removes function codes from the allow list.
func (o *OT) BlockDNP3(ctx context.Context, codes ...uint8) error {
	return o.change(ctx, codes, false)
}

func (o *OT) change(ctx context.Context, codes []uint8, allow bool) error {
	o.f.mu.Lock()
	defer o.f.mu.Unlock()
	objs, err := o.f.kernel(ctx, "ot")
	if err != nil {
		return err
	}
	m := objs.Dnp3FcodeMap
	for _, c := range codes {
		var err error
		if allow {
			err = m.Update(c, uint8(1), ebpf.UpdateAny)
		} else if err = m.Delete(c); errors.Is(err, ebpf.ErrKeyNotExist) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("dnp3_fcode_map: function code %d: %w", c, err)
		}
	}
	return nil
}

// DNP3Allowed lists the allowed DNP3 function codes.
func (o *OT) DNP3Allowed() ([]uint8, error) {
	o.f.mu.Lock()
	defer o.f.mu.Unlock()
	objs, err := o.f.kernel(context.Background(), "ot")
	if err != nil {
		return nil, err
	}
	var out []uint8
	var c, v uint8
	it := objs.Dnp3FcodeMap.Iterate()
	for it.Next(&c, &v) {
		out = append(out, c)
	}
	slices.Sort(out)
	return out, it.Err()
}
