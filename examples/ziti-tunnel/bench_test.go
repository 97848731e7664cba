package main

import (
	"context"
	"testing"

	"github.com/zfw-go/zfw/intercept/ziti"
	"github.com/zfw-go/zfw/internal/bench"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// BenchmarkRegister10000Services measures the Interceptor registering
// 10,000 services, one Update each, in a real (kernel) dataplane. One op
// is the whole batch; the metric us/service divides it.
func BenchmarkRegister10000Services(b *testing.B) {
	testenv.RequirePrivileged(b)
	const count = 10000
	services, err := bench.ZitiServices(count)
	if err != nil {
		b.Fatal(err)
	}
	fw, err := zfw.New(zfw.Options{PinPath: pinPath(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer fw.Close()
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ic, err := ziti.New(ziti.Options{Registrar: fw, Listeners: &bench.PortCounter{}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, svc := range services {
			if err := ic.Update(ctx, svc); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if got := len(ic.Services()); got != count {
			b.Fatalf("%d services intercepted, want %d", got, count)
		}
		if got := len(fw.Intercepts()); got != count {
			b.Fatalf("%d intercepts in the dataplane, want %d", got, count)
		}
		if err := ic.Close(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*count), "us/service")
}
