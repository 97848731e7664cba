package ziti

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/openziti/edge-api/rest_model"

	"github.com/zfw-go/zfw/intercept"
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

// FuzzHostTarget feeds the hosting side what a controller (host.v1 and
// host.v2 configs) and a dialing side (AppData) could send: it never
// panics, and a target it accepts is a TCP or UDP host:port with a port,
// opened from a source the config allows or from the host's own address.
func FuzzHostTarget(f *testing.F) {
	for _, seed := range []struct{ configs, appData string }{
		{`{"host.v1":{"protocol":"tcp","address":"127.0.0.1","port":8080}}`, ``},
		{`{"host.v1":{"forwardProtocol":true,"allowedProtocols":["tcp","udp"],"forwardAddress":true,"allowedAddresses":["10.0.0.0/8","*.corp"],"forwardPort":true,"allowedPortRanges":[{"low":1,"high":65535}],"allowedSourceAddresses":["192.168.0.0/16"]}}`,
			`{"dst_protocol":"udp","dst_ip":"10.1.2.3","dst_hostname":"a.corp","dst_port":"53","source_addr":"192.168.1.1:4000"}`},
		{`{"host.v2":{"terminators":[{"protocol":"udp","address":"fd00::1","port":53,"listenOptions":{"precedence":"failed","cost":3}}]}}`, `{"dst_port":"0"}`},
		{`{"host.v1":{"protocol":"sctp","address":"10.0.0.0/8","port":-1}}`, `[]`},
	} {
		f.Add([]byte(seed.configs), []byte(seed.appData))
	}
	f.Fuzz(func(t *testing.T, data, appData []byte) {
		var configs map[string]map[string]any
		if json.Unmarshal(data, &configs) != nil {
			return
		}
		id, name := "3Tq", "web"
		hosts, err := DecodeHosts(&rest_model.ServiceDetail{BaseEntity: rest_model.BaseEntity{ID: &id}, Name: &name, Config: configs})
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.ServiceID != id || ce.Reason == "" {
				t.Fatalf("error %v (%T): want a *ConfigError naming the service", err, err)
			}
			return
		}
		for _, h := range hosts {
			tgt, err := h.Target(appData)
			if err != nil {
				continue
			}
			if tgt.Protocol != intercept.TCP && tgt.Protocol != intercept.UDP {
				t.Fatalf("target protocol %q", tgt.Protocol)
			}
			host, port, err := net.SplitHostPort(tgt.Address)
			if err != nil || host == "" || port == "0" {
				t.Fatalf("target address %q", tgt.Address)
			}
			if tgt.Source.IsValid() && !slices.ContainsFunc(h.AllowedSourceAddresses, func(p netip.Prefix) bool { return p.Contains(tgt.Source.Addr()) }) {
				t.Fatalf("source %s outside %v", tgt.Source, h.AllowedSourceAddresses)
			}
		}
	})
}
