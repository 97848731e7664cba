package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/ddos"
)

// present is an interface lookup that knows eth0, eth1 and eth2.
func present(name string) error {
	switch name {
	case "eth0", "eth1", "eth2":
		return nil
	}
	return errors.New("interface " + name + " not found")
}

func TestConfigMapsInterfaces(t *testing.T) {
	tests := []struct {
		name, json string
		want       []zfw.Interface
		syn        ddos.SYNFlood
	}{
		{
			name: "C zfw sample",
			json: `{"InternalInterfaces":[{"Name":"eth0", "OutboundPassThroughTrack": true, "PerInterfaceRules": false}],
 "ExternalInterfaces":[]}`,
			want: []zfw.Interface{{Name: "eth0"}},
		},
		{
			name: "external defaults to a host firewall with per-interface rules",
			json: `{"ExternalInterfaces":[{"Name":"eth1"}]}`,
			want: []zfw.Interface{{Name: "eth1", InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true, PerInterfaceRules: true}}},
		},
		{
			name: "router with masquerade, internal first",
			json: `{"ExternalInterfaces":[{"Name":"eth1","Masquerade":true}],"InternalInterfaces":[{"Name":"eth0"}]}`,
			want: []zfw.Interface{
				{Name: "eth0"},
				{Name: "eth1", InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true, PerInterfaceRules: true, Masquerade: true}},
			},
		},
		{
			name: "defaults overridden",
			json: `{"InternalInterfaces":[{"Name":"eth0","DefaultDeny":true,"PerInterfaceRules":true}],
 "ExternalInterfaces":[{"Name":"eth1","DefaultDeny":false,"PerInterfaceRules":false,"OutboundPassThroughTrack":false}]}`,
			want: []zfw.Interface{
				{Name: "eth0", InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true, PerInterfaceRules: true}},
				{Name: "eth1"},
			},
		},
		{
			name: "every setting",
			json: `{"ExternalInterfaces":[{"Name":"eth1","Verbose":true,"ICMPEcho":true,"DisableSSH":true,"VRRP":true,"EAPOL":true,
 "PassNonTuple":true,"DisableIPv6":true,"OutboundFilter":true,"DDoSProtection":true,"OTFiltering":true}],
 "DDoS":{"ProtectedPorts":[443,8443],"SYNsPerSecond":50,"BanDuration":"90s"},"OT":{"DNP3FunctionCodes":[0,1,129]}}`,
			want: []zfw.Interface{{Name: "eth1", InterfaceSettings: zfw.InterfaceSettings{
				DefaultDeny: true, PerInterfaceRules: true, Verbose: true, ICMPEcho: true, DisableSSH: true, VRRP: true,
				EAPOL: true, PassNonTuple: true, DisableIPv6: true, OutboundFilter: true, DDoSProtection: true, OTFiltering: true,
			}}},
			syn: ddos.SYNFlood{SYNsPerSecond: 50, BanDuration: 90 * time.Second},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(present); err != nil {
				t.Fatal(err)
			}
			if got := c.Interfaces(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Interfaces() =\n%+v\nwant\n%+v", got, tc.want)
			}
			if got := c.SYNFlood(); got != tc.syn {
				t.Errorf("SYNFlood() = %+v, want %+v", got, tc.syn)
			}
		})
	}
}

func TestConfigRefuses(t *testing.T) {
	tests := []struct {
		name, json string
		want       []string // every one must be in the error
	}{
		{"bad JSON", "{\"InternalInterfaces\":[\n{\"Name\":\"eth0\",}]}", []string{"line 2, column 16"}},
		{"trailing data", `{"InternalInterfaces":[{"Name":"eth0"}]} x`, []string{"bad JSON at line 1"}},
		{"not an object", `[]`, []string{"top level: [] is not an object"}},
		{"unknown field", `{"Interfaces":[{"Name":"eth0"}]}`, []string{"Interfaces: unknown field (known: InternalInterfaces, ExternalInterfaces, DDoS, OT)"}},
		{"field in the wrong case", `{"internalInterfaces":[{"Name":"eth0"}]}`, []string{"internalInterfaces: unknown field"}},
		{"unknown interface field", `{"InternalInterfaces":[{"Name":"eth0"}],"ExternalInterfaces":[{"Name":"eth1","Masq":true}]}`, []string{"ExternalInterfaces[0].Masq: unknown field"}},
		{"wrong type", `{"InternalInterfaces":[{"Name":"eth0","PerInterfaceRules":"yes"}]}`, []string{`InternalInterfaces[0].PerInterfaceRules: "yes" is not true or false`}},
		{"list expected", `{"InternalInterfaces":{"Name":"eth0"}}`, []string{"InternalInterfaces: {\"Name\":\"eth0\"} is not a list"}},
		{"number out of range", `{"ExternalInterfaces":[{"Name":"eth1","DDoSProtection":true}],"DDoS":{"SYNsPerSecond":1e99}}`, []string{"DDoS.SYNsPerSecond: 1e99 is not a whole number"}},
		{"no interfaces", `{"InternalInterfaces":[],"ExternalInterfaces":null}`, []string{"no interface listed"}},
		{"empty file", `null`, []string{"no interface listed"}},
		{"name missing", `{"InternalInterfaces":[{"PerInterfaceRules":true}]}`, []string{"InternalInterfaces[0].Name: missing"}},
		{"name invalid", `{"InternalInterfaces":[{"Name":"eth 0"}]}`, []string{`InternalInterfaces[0].Name: "eth 0" is not an interface name`}},
		{"missing interface", `{"ExternalInterfaces":[{"Name":"eth9"}]}`, []string{"ExternalInterfaces[0].Name: interface eth9 not found"}},
		{"listed twice", `{"InternalInterfaces":[{"Name":"eth0"}],"ExternalInterfaces":[{"Name":"eth0"}]}`, []string{"ExternalInterfaces[0].Name: eth0 is listed already as InternalInterfaces[0]"}},
		{"ziti tun", `{"InternalInterfaces":[{"Name":"ziti0"}]}`, []string{"InternalInterfaces[0].Name: ziti0: a Ziti tun"}},
		{"internal masquerade", `{"InternalInterfaces":[{"Name":"eth0","Masquerade":true}]}`, []string{"InternalInterfaces[0].Masquerade: only external interfaces masquerade"}},
		{"untracked firewall", `{"ExternalInterfaces":[{"Name":"eth1","OutboundPassThroughTrack":false}]}`, []string{"ExternalInterfaces[0].OutboundPassThroughTrack: false is not supported"}},
		{"DDoS without an interface", `{"ExternalInterfaces":[{"Name":"eth1"}],"DDoS":{}}`, []string{"DDoS: no interface sets DDoSProtection"}},
		{"DDoS values", `{"ExternalInterfaces":[{"Name":"eth1","DDoSProtection":true}],"DDoS":{"ProtectedPorts":[80,0],"SYNsPerSecond":-1,"BanDuration":"soon"}}`,
			[]string{"DDoS.ProtectedPorts[1]: 0 is not a port", "DDoS.SYNsPerSecond: -1 is negative", `DDoS.BanDuration: "soon" is not a positive duration`}},
		{"OT without an interface", `{"ExternalInterfaces":[{"Name":"eth1"}],"OT":{"DNP3FunctionCodes":[1]}}`, []string{"OT: no interface sets OTFiltering"}},
		{"OT code", `{"ExternalInterfaces":[{"Name":"eth1","OTFiltering":true}],"OT":{"DNP3FunctionCodes":[1,256]}}`, []string{"OT.DNP3FunctionCodes[1]: 256 is not a function code"}},
		{"every problem at once", `{"InternalInterfaces":[{"Name":"eth9"},{"Name":""}],"ExternalInterfaces":[{"Name":"eth1","Masquerade":true,"DefaultDeny":true,"OutboundPassThroughTrack":false}]}`,
			[]string{"InternalInterfaces[0].Name: interface eth9 not found", "InternalInterfaces[1].Name: missing", "ExternalInterfaces[0].OutboundPassThroughTrack"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if err == nil {
				err = c.Validate(present)
			}
			if err == nil {
				t.Fatalf("config accepted, want an error saying %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}
