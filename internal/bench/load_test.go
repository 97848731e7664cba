package bench

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestDrainCountsEveryByteUntilTheSenderCloses(t *testing.T) {
	for _, size := range []int{0, 1, 256 << 10, 3<<20 + 7} {
		a, b := net.Pipe()
		go func() {
			a.Write(make([]byte, size))
			a.Close()
		}()
		n, err := drain(b)
		if err != nil || n != int64(size) {
			t.Errorf("drain of %d bytes: %d, %v", size, n, err)
		}
		b.Close()
	}
}

func TestThroughputAndConnRateAgainstTheServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := Serve(ln)
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	here := In(func(fn func() error) error { return fn() })
	ctx := context.Background()

	bits, err := Throughput(ctx, here, addr, 50*time.Millisecond)
	if err != nil || bits <= 0 {
		t.Errorf("Throughput: %v bit/s, %v", bits, err)
	}
	conns, err := ConnRate(ctx, here, addr, 2, 50*time.Millisecond)
	if err != nil || conns.Rate <= 0 || conns.Connections == 0 {
		t.Errorf("ConnRate: %+v, %v", conns, err)
	}
	if conns.P50 <= 0 || conns.P99 < conns.P50 {
		t.Errorf("ConnRate: latency p50 %v, p99 %v", conns.P50, conns.P99)
	}
	if err := srv.Close(); err != nil {
		t.Error(err)
	}
	if n := srv.Errors(); n != 0 {
		t.Errorf("the server failed %d connections", n)
	}
}
