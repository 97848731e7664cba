package ziti

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/openziti/edge-api/rest_model"
)

// FuzzDecodeConfig feeds DecodeConfig the configs a controller could send
// (any JSON): it never panics, refuses with a *ConfigError that names the
// service, and what it accepts has every list filled and every range in
// order.
func FuzzDecodeConfig(f *testing.F) {
	for _, seed := range []string{
		`{"intercept.v1":{"protocols":["tcp","udp"],"addresses":["10.0.0.1","*.example.com","fd00::/64"],"portRanges":[{"low":80,"high":443}],"dialOptions":{"connectTimeoutSeconds":5,"identity":"$dst_ip"},"sourceIp":"$src_ip:$src_port","allowedSourceAddresses":["192.168.0.0/16"]}}`,
		`{"ziti-tunneler-client.v1":{"hostname":"db.internal","port":5432}}`,
		`{"intercept.v1":{"Protocols":["TCP"],"ADDRESSES":["a.b"],"portranges":[{"Low":1,"High":65535}]}}`,
		`{"intercept.v1":{"protocols":["tcp"],"addresses":["10.0.0.1"],"portRanges":[{"low":90,"high":80}]}}`,
		`{"intercept.v1":{"protocols":[],"addresses":null,"portRanges":[{"low":1.5,"high":"x"}]}}`,
		`{"intercept.v1":null,"ziti-tunneler-client.v1":{"hostname":"","port":-1}}`,
		`{"other.v1":{}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var configs map[string]map[string]any
		if json.Unmarshal(data, &configs) != nil {
			return
		}
		id, name := "3Tq", "web"
		svc := &rest_model.ServiceDetail{BaseEntity: rest_model.BaseEntity{ID: &id}, Name: &name, Config: configs}
		cfg, ok, err := DecodeConfig(svc)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.ServiceID != id || ce.ServiceName != name || ce.Reason == "" {
				t.Fatalf("error %v (%T): want a *ConfigError naming the service", err, err)
			}
			return
		}
		if !ok {
			return
		}
		if len(cfg.Protocols) == 0 || len(cfg.Addresses) == 0 || len(cfg.PortRanges) == 0 {
			t.Fatalf("accepted %+v with an empty list", cfg)
		}
		for _, r := range cfg.PortRanges {
			if r.Low == 0 || r.Low > r.High {
				t.Fatalf("accepted port range %v", r)
			}
		}
		for _, p := range cfg.SourcePrefixes {
			if !p.IsValid() {
				t.Fatalf("accepted source prefix %v", p)
			}
		}
	})
}
