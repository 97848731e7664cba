package ziti

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCommandErrorNamesTheCommandAndItsOutput(t *testing.T) {
	cause := errors.New("exit status 1")
	err := error(&CommandError{
		Args:   []string{"edge", "create", "config", "c", "host.v1", `{"port": 1}`},
		Output: []byte("  duplicate value 'c'\n"),
		Err:    cause,
	})
	msg := err.Error()
	for _, want := range []string{"ziti edge create config c host.v1", `"{\"port\": 1}"`, "exit status 1", "duplicate value 'c'"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if !errors.Is(err, cause) {
		t.Errorf("error does not wrap its cause")
	}
}

func TestCreatedIDReadsTheFirstJSONResponse(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    string
		wantErr bool
	}{
		{name: "only JSON", out: `{"data":{"id":"abc"},"meta":{}}`, want: "abc"},
		{
			name: "text before, a second document after",
			out:  "Saving identity\n{\"data\":{\"id\":\"x1\"}}\n{\"data\":{\"id\":\"other\"}}\nEnrollment expires at soon\n",
			want: "x1",
		},
		{name: "no JSON", out: "error: nope", wantErr: true},
		{name: "no id", out: `{"data":{}}`, wantErr: true},
		{name: "broken JSON", out: `{"data":`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := createdID([]byte(tt.out))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("createdID = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("createdID = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestConfigsMarshalToTheirSchemaFields(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		wantType string
		want     string
	}{
		{
			name: "intercept.v1",
			cfg: InterceptV1{
				Protocols:  []string{"tcp", "udp"},
				Addresses:  []string{"10.0.0.1", "10.1.0.0/16"},
				PortRanges: []PortRange{{Low: 80, High: 81}},
				DialOptions: &DialOptions{
					ConnectTimeoutSeconds: 3,
					Identity:              "$dst_ip",
				},
				AllowedSourceAddresses: []string{"192.168.0.0/16"},
			},
			wantType: "intercept.v1",
			want: `{"protocols":["tcp","udp"],"addresses":["10.0.0.1","10.1.0.0/16"],"portRanges":[{"low":80,"high":81}],` +
				`"dialOptions":{"connectTimeoutSeconds":3,"identity":"$dst_ip"},"allowedSourceAddresses":["192.168.0.0/16"]}`,
		},
		{
			name:     "host.v1 fixed",
			cfg:      HostV1{Protocol: "tcp", Address: "127.0.0.1", Port: 7000},
			wantType: "host.v1",
			want:     `{"protocol":"tcp","address":"127.0.0.1","port":7000}`,
		},
		{
			name: "host.v1 forwarding",
			cfg: HostV1{
				ForwardProtocol: true, AllowedProtocols: []string{"tcp"},
				ForwardAddress: true, AllowedAddresses: []string{"127.0.0.1"},
				ForwardPort: true, AllowedPortRanges: []PortRange{{Low: 1, High: 65535}},
			},
			wantType: "host.v1",
			want: `{"forwardProtocol":true,"allowedProtocols":["tcp"],"forwardAddress":true,"allowedAddresses":["127.0.0.1"],` +
				`"forwardPort":true,"allowedPortRanges":[{"low":1,"high":65535}]}`,
		},
		{
			name:     "raw",
			cfg:      RawConfig{Type: "interfaces.v1", JSON: json.RawMessage(`{"interfaces":["eth1"]}`)},
			wantType: "interfaces.v1",
			want:     `{"interfaces":["eth1"]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.ConfigType(); got != tt.wantType {
				t.Errorf("ConfigType = %q, want %q", got, tt.wantType)
			}
			got, err := json.Marshal(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("JSON\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestRawConfigRejectsInvalidJSON(t *testing.T) {
	if got, err := json.Marshal(RawConfig{Type: "host.v1", JSON: json.RawMessage(`{"port":`)}); err == nil {
		t.Errorf("Marshal = %s, want an error", got)
	}
}
