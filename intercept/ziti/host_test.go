package ziti

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/intercept"
)

func TestDecodeHostsReadsHostV1AndV2(t *testing.T) {
	defaults := HostListen{ConnectTimeout: DefaultDialTimeout, MaxConnections: DefaultMaxConnections}
	tests := []struct {
		name    string
		configs map[string]string
		want    []Host
	}{
		{
			name:    "fixed target",
			configs: map[string]string{HostV1: `{"protocol": "TCP", "address": "127.0.0.1", "port": 8080}`},
			want:    []Host{{Protocol: intercept.TCP, Address: "127.0.0.1", Port: 8080, Listen: defaults}},
		},
		{
			name: "everything forwarded, with sources and listen options",
			configs: map[string]string{HostV1: `{
				"forwardProtocol": true, "allowedProtocols": ["tcp", "udp"],
				"forwardAddress": true, "allowedAddresses": ["10.0.0.0/8", "db.corp", "*.apps.corp"],
				"forwardPort": true, "allowedPortRanges": [{"low": 80, "high": 90}],
				"allowedSourceAddresses": ["192.168.0.0/16"],
				"listenOptions": {"bindUsingEdgeIdentity": true, "cost": 7, "precedence": "Required", "connectTimeoutSeconds": 2, "maxConnections": 1}
			}`},
			want: []Host{{
				ForwardProtocol: true, AllowedProtocols: []intercept.Protocol{intercept.TCP, intercept.UDP},
				ForwardAddress: true, AllowedAddresses: []Address{
					{Kind: Prefix, Prefix: netip.MustParsePrefix("10.0.0.0/8")},
					{Kind: Hostname, Name: "db.corp"},
					{Kind: Wildcard, Name: "*.apps.corp"},
				},
				ForwardPort: true, AllowedPortRanges: []intercept.PortRange{{Low: 80, High: 90}},
				AllowedSourceAddresses: prefixes("192.168.0.0/16"),
				Listen:                 HostListen{BindUsingEdgeIdentity: true, Cost: 7, Precedence: "required", ConnectTimeout: 2 * time.Second, MaxConnections: 1},
			}},
		},
		{
			name: "host.v2 terminators, preferred over host.v1",
			configs: map[string]string{
				HostV2: `{"terminators": [{"protocol": "tcp", "address": "a.corp", "port": 1}, {"protocol": "udp", "address": "fd00::1", "port": 2}]}`,
				HostV1: `{"protocol": "tcp", "address": "ignored", "port": 3}`,
			},
			want: []Host{
				{Protocol: intercept.TCP, Address: "a.corp", Port: 1, Listen: defaults},
				{Protocol: intercept.UDP, Address: "fd00::1", Port: 2, Listen: defaults},
			},
		},
		{name: "no hosting config", configs: map[string]string{InterceptV1: `{}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeHosts(detail(t, "s1", "web", tc.configs))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DecodeHosts =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestDecodeHostsNamesTheFieldAtFault(t *testing.T) {
	tests := []struct {
		name, typ, config, want string
	}{
		{"no protocol", HostV1, `{"address": "a", "port": 1}`, `host.v1: protocol: "", want tcp or udp`},
		{"a CIDR address", HostV1, `{"protocol": "tcp", "address": "10.0.0.0/8", "port": 1}`, "host.v1: address"},
		{"no port", HostV1, `{"protocol": "tcp", "address": "a"}`, "host.v1: port: missing"},
		{"port out of range", HostV1, `{"protocol": "tcp", "address": "a", "port": 70000}`, "port 70000 is out of range"},
		{"forwarded, nothing allowed", HostV1, `{"forwardProtocol": true, "address": "a", "port": 1}`, "host.v1: allowedProtocols: missing"},
		{"bad allowed address", HostV1, `{"protocol": "tcp", "forwardAddress": true, "allowedAddresses": ["a..b"], "port": 1}`, "host.v1: allowedAddresses: [0]"},
		{"bad source", HostV1, `{"protocol": "tcp", "address": "a", "port": 1, "allowedSourceAddresses": ["x"]}`, "allowedSourceAddresses[0]"},
		{"bad precedence", HostV1, `{"protocol": "tcp", "address": "a", "port": 1, "listenOptions": {"precedence": "high"}}`, "listenOptions.precedence"},
		{"terminator at fault", HostV2, `{"terminators": [{"protocol": "tcp", "address": "a", "port": 1}, {"protocol": "sctp", "address": "a", "port": 1}]}`, "host.v2: terminators[1].protocol"},
		{"no terminators", HostV2, `{"terminators": []}`, "host.v2: terminators: empty list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeHosts(detail(t, "s1", "web", map[string]string{tc.typ: tc.config}))
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DecodeHosts: %v, want a ConfigError saying %q", err, tc.want)
			}
		})
	}
}

func TestHostTargetTakesWhatTheConfigAllows(t *testing.T) {
	fixed := Host{Protocol: intercept.TCP, Address: "127.0.0.1", Port: 8080}
	forward := Host{
		ForwardProtocol: true, AllowedProtocols: []intercept.Protocol{intercept.TCP},
		ForwardAddress: true, AllowedAddresses: []Address{
			{Kind: Prefix, Prefix: netip.MustParsePrefix("10.0.0.0/8")},
			{Kind: Wildcard, Name: "*.apps.corp"},
		},
		ForwardPort: true, AllowedPortRanges: []intercept.PortRange{{Low: 80, High: 90}},
	}
	transparent := fixed
	transparent.AllowedSourceAddresses = prefixes("192.168.0.0/16", "fd01::/48")
	tests := []struct {
		name    string
		host    Host
		appData string
		want    HostTarget
		err     string
	}{
		{name: "fixed, no appdata", host: fixed, want: HostTarget{Protocol: intercept.TCP, Address: "127.0.0.1:8080"}},
		{name: "fixed ignores the dialing side", host: fixed, appData: `{"dst_protocol":"udp","dst_ip":"10.1.1.1","dst_port":"99"}`, want: HostTarget{Protocol: intercept.TCP, Address: "127.0.0.1:8080"}},
		{name: "fixed ignores source_addr without allowed sources", host: fixed, appData: `{"source_addr":"192.168.4.4:5000"}`, want: HostTarget{Protocol: intercept.TCP, Address: "127.0.0.1:8080"}},
		{name: "forwarded IP", host: forward, appData: `{"dst_protocol":"tcp","dst_ip":"10.1.1.1","dst_port":"85"}`, want: HostTarget{Protocol: intercept.TCP, Address: "10.1.1.1:85"}},
		{name: "forwarded name under a wildcard", host: forward, appData: `{"dst_protocol":"tcp","dst_ip":"100.64.0.9","dst_hostname":"Web.Apps.Corp.","dst_port":"80"}`, want: HostTarget{Protocol: intercept.TCP, Address: "web.apps.corp:80"}},
		{name: "forwarded IPv6", host: Host{Protocol: intercept.TCP, ForwardAddress: true, AllowedAddresses: []Address{{Kind: Prefix, Prefix: netip.MustParsePrefix("fd00::/64")}}, Port: 443}, appData: `{"dst_ip":"fd00::7"}`, want: HostTarget{Protocol: intercept.TCP, Address: "[fd00::7]:443"}},
		{name: "transparent source", host: transparent, appData: `{"source_addr":"192.168.4.4:5000"}`, want: HostTarget{Protocol: intercept.TCP, Address: "127.0.0.1:8080", Source: netip.MustParseAddrPort("192.168.4.4:5000")}},
		{name: "transparent IPv6 source without port", host: transparent, appData: `{"source_addr":"fd01::9"}`, want: HostTarget{Protocol: intercept.TCP, Address: "127.0.0.1:8080", Source: netip.MustParseAddrPort("[fd01::9]:0")}},
		{name: "protocol not allowed", host: forward, appData: `{"dst_protocol":"udp","dst_ip":"10.1.1.1","dst_port":"85"}`, err: `protocol "udp"`},
		{name: "address not allowed", host: forward, appData: `{"dst_protocol":"tcp","dst_ip":"11.1.1.1","dst_port":"85"}`, err: "address 11.1.1.1"},
		{name: "name not allowed", host: forward, appData: `{"dst_protocol":"tcp","dst_hostname":"evil.corp","dst_port":"85"}`, err: `hostname "evil.corp"`},
		{name: "no address", host: forward, appData: `{"dst_protocol":"tcp","dst_port":"85"}`, err: "no destination address"},
		{name: "port not allowed", host: forward, appData: `{"dst_protocol":"tcp","dst_ip":"10.1.1.1","dst_port":"91"}`, err: "port 91"},
		{name: "port not a port", host: forward, appData: `{"dst_protocol":"tcp","dst_ip":"10.1.1.1","dst_port":"x"}`, err: `port "x"`},
		{name: "source not allowed", host: transparent, appData: `{"source_addr":"10.9.9.9:1"}`, err: "not in the allowed source addresses"},
		{name: "source not an address", host: transparent, appData: `{"source_addr":"here"}`, err: `source_addr "here"`},
		{name: "appdata not JSON", host: fixed, appData: `{`, err: "appdata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.host.Target([]byte(tc.appData))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Target: %+v, %v; want an error saying %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Target = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
