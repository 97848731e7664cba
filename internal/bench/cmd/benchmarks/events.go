package main

import (
	"context"
	"net/netip"
	"time"

	"github.com/zfw-go/zfw/internal/bench"
	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/zfw"
)

// eventRate offers drop events from a verbose default-deny lo as fast as
// test runs make them and counts what a Go reader of fw.Events receives
// per second. It must run inside the per-packet namespace.
func eventRate(ctx context.Context, cfg config) (float64, error) {
	pin := benchPin()
	fw, err := zfw.New(zfw.Options{PinPath: pin, EventsPerSecond: 1 << 30, Logger: cfg.log,
		Interfaces: []zfw.Interface{{Name: "lo", InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true, Verbose: true}}}})
	if err != nil {
		return 0, err
	}
	defer fw.Close()
	prog, err := bench.AttachedProgram(pin, "lo", "ingress")
	if err != nil {
		return 0, err
	}
	defer prog.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := fw.Events(ctx)
	if err != nil {
		return 0, err
	}
	got := make(chan int)
	go func() {
		n := 0
		for range events {
			n++
		}
		got <- n
	}()
	r := bench.NewRunner(prog, 1)
	frame := packet.Build(packet.Spec{Src: netip.MustParseAddr("192.168.1.2"), Dst: netip.MustParseAddr("10.9.9.9"), Proto: packet.UDP, SrcPort: 1, DstPort: 9})
	offer := time.Second
	if cfg.quick {
		offer = 200 * time.Millisecond
	}
	start := time.Now()
	for time.Since(start) < offer {
		if _, _, err := r.Run(frame, 64); err != nil {
			return 0, err
		}
	}
	time.Sleep(200 * time.Millisecond) // let the reader drain
	cancel()
	n := <-got
	return float64(n) / time.Since(start).Seconds(), nil
}
