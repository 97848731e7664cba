package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/openziti/edge-api/rest_model"

	"github.com/zfw-go/zfw/intercept/ziti"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// portCounter is a ziti.Listeners that opens no socket: each service gets
// the next port. It isolates the Interceptor and the dataplane from the
// cost of opening sockets.
type portCounter struct {
	mu    sync.Mutex
	next  uint16
	ports map[string]uint16
}

func (p *portCounter) Open(_ context.Context, spec ziti.ListenerSpec) (uint16, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if port, ok := p.ports[spec.ServiceID]; ok {
		return port, nil
	}
	if p.ports == nil {
		p.ports, p.next = map[string]uint16{}, 1024
	}
	p.next++
	p.ports[spec.ServiceID] = p.next
	return p.next, nil
}

func (p *portCounter) Close(serviceID string) error {
	p.mu.Lock()
	delete(p.ports, serviceID)
	p.mu.Unlock()
	return nil
}

// syntheticServices returns count dialable services as the SDK hands them
// over: intercept.v1 decoded from JSON, TCP and UDP, one address each and
// two port ranges.
func syntheticServices(tb testing.TB, count int) []*rest_model.ServiceDetail {
	tb.Helper()
	out := make([]*rest_model.ServiceDetail, count)
	for k := range out {
		id, name := fmt.Sprintf("svc%06d", k), fmt.Sprintf("service-%d", k)
		text := fmt.Sprintf(`{"protocols":["tcp","udp"],"addresses":["10.%d.%d.%d"],`+
			`"portRanges":[{"low":80,"high":80},{"low":8000,"high":8099}]}`, 100+k/65536, k/256%256, k%256)
		var cfg map[string]any
		if err := json.Unmarshal([]byte(text), &cfg); err != nil {
			tb.Fatal(err)
		}
		out[k] = &rest_model.ServiceDetail{
			BaseEntity:  rest_model.BaseEntity{ID: &id},
			Name:        &name,
			Permissions: rest_model.DialBindArray{rest_model.DialBindDial},
			Config:      map[string]map[string]any{ziti.InterceptV1: cfg},
		}
	}
	return out
}

// BenchmarkRegister10000Services measures the Interceptor registering
// 10,000 services, one Update each, in a real (kernel) dataplane. One op
// is the whole batch; the metric us/service divides it.
func BenchmarkRegister10000Services(b *testing.B) {
	testenv.RequirePrivileged(b)
	const count = 10000
	services := syntheticServices(b, count)
	fw, err := zfw.New(zfw.Options{PinPath: pinPath()})
	if err != nil {
		b.Fatal(err)
	}
	defer fw.Close()
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ic, err := ziti.New(ziti.Options{Registrar: fw, Listeners: &portCounter{}})
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
