package ziti

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openziti/edge-api/rest_model"

	"github.com/zfw-go/zfw/intercept"
)

// detail returns a dialable service whose configs are decoded from JSON,
// as the SDK hands them over.
func detail(t *testing.T, id, name string, configs map[string]string) *rest_model.ServiceDetail {
	t.Helper()
	svc := &rest_model.ServiceDetail{
		BaseEntity:  rest_model.BaseEntity{ID: &id},
		Name:        &name,
		Permissions: rest_model.DialBindArray{rest_model.DialBindDial},
		Config:      map[string]map[string]any{},
	}
	for typ, text := range configs {
		var m map[string]any
		if err := json.Unmarshal([]byte(text), &m); err != nil {
			t.Fatalf("config %s: %v", typ, err)
		}
		svc.Config[typ] = m
	}
	return svc
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for k, s := range ss {
		out[k] = netip.MustParsePrefix(s)
	}
	return out
}

func TestDecodeConfigReadsEveryInterceptV1Field(t *testing.T) {
	svc := detail(t, "s1", "web", map[string]string{InterceptV1: `{
		"protocols": ["tcp", "UDP"],
		"addresses": ["10.0.0.5", "10.1.0.0/16", "fd00::1", "fd00:1::/64", "DB.Corp.Example.", "*.Apps.Example", "::ffff:10.2.0.1"],
		"portRanges": [{"low": 80, "high": 80}, {"low": 8000, "high": 8100}],
		"allowedSourceAddresses": ["192.168.1.7", "192.168.0.0/16", "fd01::/48"],
		"sourceIp": "$src_ip:$src_port",
		"dialOptions": {"connectTimeoutSeconds": 12, "identity": "$dst_ip"}
	}`})
	cfg, found, err := DecodeConfig(svc)
	if err != nil || !found {
		t.Fatalf("DecodeConfig: found %v, err %v", found, err)
	}
	want := Config{
		Type:      InterceptV1,
		Protocols: []intercept.Protocol{intercept.TCP, intercept.UDP},
		Addresses: []Address{
			{Kind: Prefix, Prefix: netip.MustParsePrefix("10.0.0.5/32")},
			{Kind: Prefix, Prefix: netip.MustParsePrefix("10.1.0.0/16")},
			{Kind: Prefix, Prefix: netip.MustParsePrefix("fd00::1/128")},
			{Kind: Prefix, Prefix: netip.MustParsePrefix("fd00:1::/64")},
			{Kind: Hostname, Name: "db.corp.example"},
			{Kind: Wildcard, Name: "*.apps.example"},
			{Kind: Prefix, Prefix: netip.MustParsePrefix("10.2.0.1/32")},
		},
		PortRanges:     []intercept.PortRange{{Low: 80, High: 80}, {Low: 8000, High: 8100}},
		SourcePrefixes: prefixes("192.168.1.7/32", "192.168.0.0/16", "fd01::/48"),
		SourceIP:       "$src_ip:$src_port",
		DialTimeout:    12 * time.Second,
		DialIdentity:   "$dst_ip",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("DecodeConfig =\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestDecodeConfigMatchesFieldNamesIgnoringCase(t *testing.T) {
	svc := detail(t, "s1", "web", map[string]string{InterceptV1: `{
		"PROTOCOLS": ["tcp"], "Addresses": ["10.0.0.5"], "portranges": [{"LOW": 1, "High": 2}],
		"DialOptions": {"ConnectTimeoutSeconds": 3, "IDENTITY": "x"}, "SOURCEIP": "1.2.3.4"
	}`})
	cfg, _, err := DecodeConfig(svc)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PortRanges[0] != (intercept.PortRange{Low: 1, High: 2}) || cfg.DialTimeout != 3*time.Second ||
		cfg.DialIdentity != "x" || cfg.SourceIP != "1.2.3.4" || len(cfg.Addresses) != 1 {
		t.Errorf("DecodeConfig = %+v", cfg)
	}
}

func TestDecodeConfigDefaults(t *testing.T) {
	svc := detail(t, "s1", "web", map[string]string{InterceptV1: `{
		"protocols": ["tcp"], "addresses": ["10.0.0.5"], "portRanges": [{"low": 1, "high": 2}],
		"dialOptions": {}, "sourceIp": null, "unknownField": true
	}`})
	cfg, _, err := DecodeConfig(svc)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DialTimeout != DefaultDialTimeout || cfg.SourceIP != "" || cfg.DialIdentity != "" || cfg.SourcePrefixes != nil {
		t.Errorf("DecodeConfig = %+v, want the defaults", cfg)
	}
}

func TestDecodeConfigReadsLegacyTunnelerClientV1(t *testing.T) {
	svc := detail(t, "s1", "web", map[string]string{TunnelerClientV1: `{"hostname": "web.corp", "port": 8443}`})
	cfg, found, err := DecodeConfig(svc)
	if err != nil || !found {
		t.Fatalf("DecodeConfig: found %v, err %v", found, err)
	}
	want := Config{
		Type:        TunnelerClientV1,
		Protocols:   []intercept.Protocol{intercept.TCP, intercept.UDP},
		Addresses:   []Address{{Kind: Hostname, Name: "web.corp"}},
		PortRanges:  []intercept.PortRange{{Low: 8443, High: 8443}},
		DialTimeout: DefaultDialTimeout,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("DecodeConfig = %+v, want %+v", cfg, want)
	}
}

func TestDecodeConfigPrefersInterceptV1(t *testing.T) {
	svc := detail(t, "s1", "web", map[string]string{
		TunnelerClientV1: `{"hostname": "legacy.corp", "port": 1}`,
		InterceptV1:      `{"protocols": ["udp"], "addresses": ["new.corp"], "portRanges": [{"low": 2, "high": 2}]}`,
	})
	cfg, _, err := DecodeConfig(svc)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Type != InterceptV1 || cfg.Addresses[0].Name != "new.corp" {
		t.Errorf("DecodeConfig = %+v, want the intercept.v1 config", cfg)
	}
}

func TestDecodeConfigWithoutClientConfigIsNotFound(t *testing.T) {
	svc := detail(t, "s1", "web", map[string]string{"host.v1": `{"protocol": "tcp", "address": "127.0.0.1", "port": 80}`})
	if _, found, err := DecodeConfig(svc); found || err != nil {
		t.Errorf("DecodeConfig: found %v, err %v; want not found", found, err)
	}
}

func TestDecodeConfigRejectsBadConfigsWithAReason(t *testing.T) {
	const (
		protos = `"protocols": ["tcp"]`
		addrs  = `"addresses": ["10.0.0.1"]`
		ports  = `"portRanges": [{"low": 80, "high": 80}]`
	)
	v1 := func(fields ...string) map[string]string {
		return map[string]string{InterceptV1: "{" + strings.Join(fields, ",") + "}"}
	}
	tests := []struct {
		name       string
		configs    map[string]string
		field      string
		reasonPart string
	}{
		{"protocols missing", v1(addrs, ports), "protocols", "missing"},
		{"protocols not a list", v1(`"protocols": "tcp"`, addrs, ports), "protocols", "a string, want a list"},
		{"protocols empty", v1(`"protocols": []`, addrs, ports), "protocols", "empty list"},
		{"protocol unknown", v1(`"protocols": ["tcp", "sctp"]`, addrs, ports), "protocols[1]", `unknown protocol "sctp"`},
		{"protocol not a string", v1(`"protocols": [6]`, addrs, ports), "protocols[0]", "a number, want a string"},
		{"addresses missing", v1(protos, ports), "addresses", "missing"},
		{"addresses empty", v1(protos, `"addresses": []`, ports), "addresses", "empty list"},
		{"address not a string", v1(protos, `"addresses": [{}]`, ports), "addresses[0]", "an object, want a string"},
		{"address empty", v1(protos, `"addresses": [""]`, ports), "addresses[0]", "empty address"},
		{"bad CIDR", v1(protos, `"addresses": ["10.0.0.0/33"]`, ports), "addresses[0]", "not a valid CIDR"},
		{"mapped CIDR", v1(protos, `"addresses": ["::ffff:10.0.0.0/120"]`, ports), "addresses[0]", "IPv4-mapped"},
		{"mistyped IP", v1(protos, `"addresses": ["10.0.0.300"]`, ports), "addresses[0]", "numeric"},
		{"bad hostname char", v1(protos, `"addresses": ["db corp"]`, ports), "addresses[0]", "character"},
		{"hostname hyphen", v1(protos, `"addresses": ["-db.corp"]`, ports), "addresses[0]", "hyphen"},
		{"empty label", v1(protos, `"addresses": ["db..corp"]`, ports), "addresses[0]", "empty label"},
		{"long label", v1(protos, `"addresses": ["`+strings.Repeat("a", 64)+`.corp"]`, ports), "addresses[0]", "at most 63"},
		{"bad wildcard", v1(protos, `"addresses": ["*.bad_*.corp"]`, ports), "addresses[0]", "wildcard"},
		{"inner wildcard", v1(protos, `"addresses": ["db.*.corp"]`, ports), "addresses[0]", "character"},
		{"portRanges missing", v1(protos, addrs), "portRanges", "missing"},
		{"portRanges empty", v1(protos, addrs, `"portRanges": []`), "portRanges", "empty list"},
		{"port range not an object", v1(protos, addrs, `"portRanges": [80]`), "portRanges[0]", "a number, want an object"},
		{"low missing", v1(protos, addrs, `"portRanges": [{"high": 80}]`), "portRanges[0].low", "missing"},
		{"high not a number", v1(protos, addrs, `"portRanges": [{"low": 80, "high": "90"}]`), "portRanges[0].high", "a string, want a number"},
		{"port fractional", v1(protos, addrs, `"portRanges": [{"low": 80.5, "high": 90}]`), "portRanges[0].low", "not a whole number"},
		{"port 0", v1(protos, addrs, `"portRanges": [{"low": 0, "high": 90}]`), "portRanges[0].low", "out of range 1-65535"},
		{"port too big", v1(protos, addrs, `"portRanges": [{"low": 1, "high": 65536}]`), "portRanges[0].high", "out of range 1-65535"},
		{"low above high", v1(protos, addrs, `"portRanges": [{"low": 80, "high": 80}, {"low": 90, "high": 80}]`), "portRanges[1]", "low 90 > high 80"},
		{"sources not a list", v1(protos, addrs, ports, `"allowedSourceAddresses": "10.0.0.0/8"`), "allowedSourceAddresses", "want a list"},
		{"sources empty", v1(protos, addrs, ports, `"allowedSourceAddresses": []`), "allowedSourceAddresses", "empty list"},
		{"source hostname", v1(protos, addrs, ports, `"allowedSourceAddresses": ["lan.corp"]`), "allowedSourceAddresses[0]", "not an IP address or CIDR"},
		{"sourceIp not a string", v1(protos, addrs, ports, `"sourceIp": 5`), "sourceIp", "want a string"},
		{"sourceIp unclosed tag", v1(protos, addrs, ports, `"sourceIp": "$tunneler_id.appData[ip"`), "sourceIp", "unclosed"},
		{"dialOptions not an object", v1(protos, addrs, ports, `"dialOptions": 5`), "dialOptions", "want an object"},
		{"timeout negative", v1(protos, addrs, ports, `"dialOptions": {"connectTimeoutSeconds": -1}`), "dialOptions.connectTimeoutSeconds", "out of range"},
		{"timeout a string", v1(protos, addrs, ports, `"dialOptions": {"connectTimeoutSeconds": "5"}`), "dialOptions.connectTimeoutSeconds", "want a number"},
		{"identity not a string", v1(protos, addrs, ports, `"dialOptions": {"identity": true}`), "dialOptions.identity", "a boolean, want a string"},
		{"legacy hostname missing", map[string]string{TunnelerClientV1: `{"port": 80}`}, "hostname", "missing"},
		{"legacy hostname bad", map[string]string{TunnelerClientV1: `{"hostname": "a b", "port": 80}`}, "hostname", "character"},
		{"legacy port missing", map[string]string{TunnelerClientV1: `{"hostname": "db.corp"}`}, "port", "missing"},
		{"legacy port 0", map[string]string{TunnelerClientV1: `{"hostname": "db.corp", "port": 0}`}, "port", "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, found, err := DecodeConfig(detail(t, "id7", "svc-seven", tt.configs))
			if !found {
				t.Fatal("DecodeConfig: config not found")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("DecodeConfig error = %v, want a *ConfigError", err)
			}
			if ce.ServiceID != "id7" || ce.ServiceName != "svc-seven" || ce.Field != tt.field || !strings.Contains(ce.Reason, tt.reasonPart) {
				t.Errorf("error = %+v, want field %q and a reason containing %q", ce, tt.field, tt.reasonPart)
			}
			msg := err.Error()
			for _, part := range []string{`"svc-seven"`, "id7", tt.field, tt.reasonPart} {
				if !strings.Contains(msg, part) {
					t.Errorf("message %q does not contain %q", msg, part)
				}
			}
		})
	}
}

func TestParseAddressClassifiesAddresses(t *testing.T) {
	tests := []struct {
		in   string
		want Address
	}{
		{"10.0.0.5", Address{Kind: Prefix, Prefix: netip.MustParsePrefix("10.0.0.5/32")}},
		{"10.0.0.5/24", Address{Kind: Prefix, Prefix: netip.MustParsePrefix("10.0.0.0/24")}},
		{"2001:db8::1", Address{Kind: Prefix, Prefix: netip.MustParsePrefix("2001:db8::1/128")}},
		{"2001:db8::/32", Address{Kind: Prefix, Prefix: netip.MustParsePrefix("2001:db8::/32")}},
		{"localhost", Address{Kind: Hostname, Name: "localhost"}},
		{"_srv.db-1.Corp.example.", Address{Kind: Hostname, Name: "_srv.db-1.corp.example"}},
		{"*.corp", Address{Kind: Wildcard, Name: "*.corp"}},
		{"1password.com", Address{Kind: Hostname, Name: "1password.com"}},
	}
	for _, tt := range tests {
		got, err := parseAddress(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseAddress(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestCanDialNeedsDialPermission(t *testing.T) {
	for _, tt := range []struct {
		perms rest_model.DialBindArray
		want  bool
	}{
		{rest_model.DialBindArray{rest_model.DialBindDial}, true},
		{rest_model.DialBindArray{rest_model.DialBindBind, rest_model.DialBindDial}, true},
		{rest_model.DialBindArray{rest_model.DialBindBind}, false},
		{nil, false},
	} {
		if got := CanDial(&rest_model.ServiceDetail{Permissions: tt.perms}); got != tt.want {
			t.Errorf("CanDial(%v) = %v, want %v", tt.perms, got, tt.want)
		}
	}
}
