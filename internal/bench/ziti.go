package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/openziti/edge-api/rest_model"

	zitiintercept "github.com/zfw-go/zfw/intercept/ziti"
)

// ZitiServices returns n dialable services as sdk-golang hands them to a
// tunneler: an intercept.v1 config decoded from JSON, TCP and UDP, one
// IPv4 address each (10.100.0.0 upwards) and two port ranges (80 and
// 8000-8099). Service k has the id "svc" plus k in six digits.
func ZitiServices(n int) ([]*rest_model.ServiceDetail, error) {
	out := make([]*rest_model.ServiceDetail, n)
	for k := range out {
		id, name := fmt.Sprintf("svc%06d", k), fmt.Sprintf("service-%d", k)
		text := fmt.Sprintf(`{"protocols":["tcp","udp"],"addresses":["10.%d.%d.%d"],`+
			`"portRanges":[{"low":80,"high":80},{"low":8000,"high":8099}]}`, 100+k/65536, k/256%256, k%256)
		var cfg map[string]any
		if err := json.Unmarshal([]byte(text), &cfg); err != nil {
			return nil, fmt.Errorf("service %s: intercept.v1: %w", id, err)
		}
		out[k] = &rest_model.ServiceDetail{
			BaseEntity:  rest_model.BaseEntity{ID: &id},
			Name:        &name,
			Permissions: rest_model.DialBindArray{rest_model.DialBindDial},
			Config:      map[string]map[string]any{zitiintercept.InterceptV1: cfg},
		}
	}
	return out, nil
}

// PortCounter is a ziti.Listeners (package intercept/ziti) that opens no
// socket: each new service gets the next port above 1024, and a service
// seen before keeps its own. It isolates the Interceptor and the
// dataplane from the cost of opening sockets. The zero value is ready.
type PortCounter struct {
	mu    sync.Mutex
	next  uint16
	ports map[string]uint16
}

// Open implements ziti.Listeners.
func (p *PortCounter) Open(_ context.Context, spec zitiintercept.ListenerSpec) (uint16, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if port, ok := p.ports[spec.ServiceID]; ok {
		return port, nil
	}
	if p.ports == nil {
		p.ports, p.next = map[string]uint16{}, 1024
	}
	if p.next == 65535 {
		return 0, fmt.Errorf("service %s: no port left", spec.ServiceID)
	}
	p.next++
	p.ports[spec.ServiceID] = p.next
	return p.next, nil
}

// Close implements ziti.Listeners.
func (p *PortCounter) Close(serviceID string) error {
	p.mu.Lock()
	delete(p.ports, serviceID)
	p.mu.Unlock()
	return nil
}
