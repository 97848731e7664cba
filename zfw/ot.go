package zfw

import (
	"context"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/zfw-go/zfw/internal/bpfobj"
	zmaps "github.com/zfw-go/zfw/internal/maps"
	"github.com/zfw-go/zfw/zfw/ot"
)

// OT returns the industrial-protocol filtering of the interfaces set
// OTFiltering. It needs the kernel dataplane.
func (f *Firewall) OT() ot.Filter { return otFilter{f} }

// otFilter is ot.Filter over dnp3_fcode_map, the set of allowed DNP3
// function codes.
type otFilter struct{ f *Firewall }

var _ ot.Filter = otFilter{}

func (o otFilter) AllowDNP3(ctx context.Context, codes ...uint8) error {
	return o.change(ctx, codes, true)
}

func (o otFilter) BlockDNP3(ctx context.Context, codes ...uint8) error {
	return o.change(ctx, codes, false)
}

func (o otFilter) change(ctx context.Context, codes []uint8, allow bool) error {
	o.f.mu.Lock()
	defer o.f.mu.Unlock()
	objs, err := o.f.kernel(ctx, "ot")
	if err != nil {
		return err
	}
	set := mapSet[uint8]{m: zmaps.Kernel(objs.Dnp3FcodeMap), name: "dnp3_fcode_map", key: func(c uint8) any { return c }}
	_, err = set.change(codes, allow)
	return err
}

func (o otFilter) DNP3Allowed() ([]uint8, error) {
	codes, err := readSet[uint8](o.f, "ot", func(objs *bpfobj.ZfwObjects) *ebpf.Map { return objs.Dnp3FcodeMap })
	slices.Sort(codes)
	return codes, err
}
