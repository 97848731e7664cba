package ziti

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"

	"github.com/zfw-go/zfw/intercept"
)

func TestTemplateExpandsEveryVariable(t *testing.T) {
	id := TunnelerIdentity{
		Name:    "edge-1",
		AppData: map[string]any{"srcip": "10.9.9.9", "port": 1999.0, "nothing": nil},
	}
	src := netip.MustParseAddrPort("192.168.1.5:40000")
	dst := netip.MustParseAddrPort("10.0.0.7:443")
	tests := []struct {
		template, hostname, want string
	}{
		{"$src_ip:$src_port", "", "192.168.1.5:40000"},
		{"$src_ip", "", "192.168.1.5"},
		{"$src_ip:$dst_port", "", "192.168.1.5:443"},
		{"$dst_ip:$src_port", "", "10.0.0.7:40000"},
		{"$dst_ip:$dst_port", "", "10.0.0.7:443"},
		{"svc-$dst_hostname", "db.corp", "svc-db.corp"},
		{"svc-$dst_hostname", "", "svc-"},
		{"$tunneler_id.name", "", "edge-1"},
		{"$tunneler_id.appData[srcip]", "", "10.9.9.9"},
		{"$tunneler_id.appData[srcip]:$tunneler_id.appData[port]", "", "10.9.9.9:1999"},
		{"$tunneler_id.appData[missing]x", "", "x"},
		{"$tunneler_id.appData[nothing]x", "", "x"},
		{"$tunneler_id.name/$src_ip/$dst_hostname", "db.corp", "edge-1/192.168.1.5/db.corp"},
		{"literal", "", "literal"},
		{"$other $", "", "$other $"},
	}
	for _, tt := range tests {
		tmpl, err := NewTemplate(tt.template, id)
		if err != nil {
			t.Fatalf("NewTemplate(%q): %v", tt.template, err)
		}
		if got := tmpl.Expand(src, dst, tt.hostname); got != tt.want {
			t.Errorf("%q expands to %q, want %q", tt.template, got, tt.want)
		}
	}
}

func TestTemplateSourceAddrPortBracketsIPv6(t *testing.T) {
	tmpl, err := NewTemplate("$src_ip:$src_port", TunnelerIdentity{})
	if err != nil {
		t.Fatal(err)
	}
	got := tmpl.Expand(netip.MustParseAddrPort("[fd00::5]:4000"), netip.MustParseAddrPort("[fd00::1]:80"), "")
	if got != "[fd00::5]:4000" {
		t.Errorf("Expand = %q, want [fd00::5]:4000", got)
	}
}

func TestTemplateDoesNotExpandIdentityValuesAgain(t *testing.T) {
	id := TunnelerIdentity{AppData: map[string]any{"a": "$tunneler_id.appData[a]"}}
	tmpl, err := NewTemplate("$tunneler_id.appData[a]", id)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.String() != "$tunneler_id.appData[a]" {
		t.Errorf("template = %q", tmpl.String())
	}
}

func TestTemplateRejectsUnclosedAppDataTag(t *testing.T) {
	if _, err := NewTemplate("x $tunneler_id.appData[ip", TunnelerIdentity{}); err == nil {
		t.Error("NewTemplate accepted an unclosed appData tag")
	}
}

func TestZeroTemplateIsUnset(t *testing.T) {
	tmpl, err := NewTemplate("", TunnelerIdentity{})
	if err != nil || !tmpl.IsZero() {
		t.Errorf("NewTemplate(\"\") = %+v, %v; want the zero Template", tmpl, err)
	}
	if got := tmpl.Expand(netip.MustParseAddrPort("1.2.3.4:5"), netip.MustParseAddrPort("5.6.7.8:9"), "h"); got != "" {
		t.Errorf("zero Template expands to %q", got)
	}
}

func TestAppDataHasTheKeysHostsExpect(t *testing.T) {
	flow := Flow{
		Protocol:    intercept.TCP,
		Source:      netip.MustParseAddrPort("192.168.1.5:40000"),
		Destination: netip.MustParseAddrPort("100.64.0.2:5432"),
	}
	tests := []struct {
		name                 string
		flow                 Flow
		hostname, sourceAddr string
		want                 map[string]any
	}{
		{"bare", flow, "", "", map[string]any{
			"dst_protocol": "tcp", "dst_ip": "100.64.0.2", "dst_port": "5432"}},
		{"hostname", flow, "db.corp", "", map[string]any{
			"dst_protocol": "tcp", "dst_ip": "100.64.0.2", "dst_port": "5432", "dst_hostname": "db.corp"}},
		{"source addr", flow, "", "192.168.1.5:40000", map[string]any{
			"dst_protocol": "tcp", "dst_ip": "100.64.0.2", "dst_port": "5432", "source_addr": "192.168.1.5:40000"}},
		{"udp mapped", Flow{Protocol: intercept.UDP, Destination: netip.MustParseAddrPort("[::ffff:10.0.0.1]:53")}, "", "",
			map[string]any{"dst_protocol": "udp", "dst_ip": "10.0.0.1", "dst_port": "53"}},
		{"ipv6", Flow{Protocol: intercept.UDP, Destination: netip.MustParseAddrPort("[fd00::1]:53")}, "", "",
			map[string]any{"dst_protocol": "udp", "dst_ip": "fd00::1", "dst_port": "53"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppData(tt.flow, tt.hostname, tt.sourceAddr)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("AppData is not JSON: %s", b)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("AppData = %s, want %v", b, tt.want)
			}
		})
	}
}

func TestAppDataRejectsIncompleteFlows(t *testing.T) {
	for _, f := range []Flow{
		{Protocol: "sctp", Destination: netip.MustParseAddrPort("10.0.0.1:1")},
		{Protocol: intercept.TCP},
	} {
		if b, err := AppData(f, "", ""); err == nil {
			t.Errorf("AppData(%+v) = %s, want an error", f, b)
		}
	}
}
