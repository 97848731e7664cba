package ziti

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	sdk "github.com/openziti/sdk-golang/ziti"
	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/testenv"
)

// startEcho runs a TCP echo server on 127.0.0.1 until tb ends.
func startEcho(tb testing.TB) *net.TCPAddr {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	serveEcho(tb, l)
	return l.Addr().(*net.TCPAddr)
}

// serveEcho echoes every connection accepted from l until tb ends.
func serveEcho(tb testing.TB, l net.Listener) {
	wait := testenv.Serve(l.Accept, func(c net.Conn) { _, _ = io.Copy(c, c) })
	tb.Cleanup(func() {
		l.Close()
		wait()
	})
}

// roundTrip writes a random payload to conn and reads it back.
func roundTrip(conn net.Conn) error {
	payload := make([]byte, 4096)
	rand.Read(payload)
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	go func() { _, _ = conn.Write(payload) }()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if !bytes.Equal(got, payload) {
		return errors.New("echo differs from what was sent")
	}
	return nil
}

// sdkContext loads an identity into an authenticated sdk-golang context
// closed when tb ends.
func sdkContext(tb testing.TB, id Identity) sdk.Context {
	tb.Helper()
	ctx, err := NewContext(id, nil, "intercept.v1", "host.v1")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ctx.Close)
	return ctx
}

// dialEventually dials service until it connects, for the moments after a
// terminator appears and before every router knows it.
func dialEventually(ctx context.Context, zctx sdk.Context, service string, opts *sdk.DialOptions) (net.Conn, error) {
	for {
		conn, err := zctx.DialWithOptions(service, opts)
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial %s: %w (last error: %v)", service, ctx.Err(), err)
		case <-time.After(readyPoll):
		}
	}
}

func mustCreate[T any](tb testing.TB, what string) func(T, error) T {
	return func(v T, err error) T {
		tb.Helper()
		if err != nil {
			tb.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// startNetwork starts a real OpenZiti network for t and gives the test two
// minutes to use it; unprivileged or -short runs skip.
func startNetwork(t *testing.T) (*Network, context.Context) {
	t.Helper()
	testenv.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("starts a real OpenZiti network")
	}
	n := StartTest(t, Options{Logger: testenv.Logger(t, logrus.InfoLevel)})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return n, ctx
}

func TestNetworkCarriesConnectionsToHostedServices(t *testing.T) {
	n, ctx := startNetwork(t)

	echo := startEcho(t)
	echoPort := strconv.Itoa(echo.Port)
	client := mustCreate[Identity](t, "client identity")(n.CreateIdentity(ctx, "client", "clients"))
	tunnelHost := mustCreate[Identity](t, "tunnel host identity")(n.CreateIdentity(ctx, "tunnel-host", "tunnel-hosts"))
	sdkHost := mustCreate[Identity](t, "sdk host identity")(n.CreateIdentity(ctx, "sdk-host", "sdk-hosts"))

	forwarding := HostV1{
		ForwardProtocol: true, AllowedProtocols: []string{"tcp"},
		ForwardAddress: true, AllowedAddresses: []string{"127.0.0.1/32"},
		ForwardPort: true, AllowedPortRanges: []PortRange{{Low: uint16(echo.Port), High: uint16(echo.Port)}},
	}
	services := []struct {
		name    string
		configs map[string]Config
		hosts   string // role attribute of the identities that bind it
	}{
		{
			name: "fixed",
			configs: map[string]Config{
				"fixed-intercept": InterceptV1{Protocols: []string{"tcp"}, Addresses: []string{"10.99.0.10"}, PortRanges: []PortRange{{Low: 7000, High: 7000}}},
				"fixed-host":      HostV1{Protocol: "tcp", Address: "127.0.0.1", Port: uint16(echo.Port)},
			},
			hosts: "tunnel-hosts",
		},
		{name: "forwarding", configs: map[string]Config{"forwarding-host": forwarding}, hosts: "tunnel-hosts"},
		{name: "sdk", hosts: "sdk-hosts"},
	}
	for _, s := range services {
		var names []string
		for name, cfg := range s.configs {
			mustCreate[string](t, "config "+name)(n.CreateConfig(ctx, name, cfg))
			names = append(names, name)
		}
		mustCreate[string](t, "service "+s.name)(n.CreateService(ctx, Service{Name: s.name, Configs: names, RoleAttributes: []string{"echo"}}))
		mustCreate[string](t, "bind "+s.name)(n.CreateServicePolicy(ctx, s.name+"-bind", Bind, []string{"@" + s.name}, []string{"#" + s.hosts}))
	}
	mustCreate[string](t, "dial policy")(n.CreateServicePolicy(ctx, "echo-dial", Dial, []string{"#echo"}, []string{"#clients"}))

	if _, err := n.Host(ctx, tunnelHost); err != nil {
		t.Fatal(err)
	}
	listener, err := sdkContext(t, sdkHost).Listen("sdk")
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, listener)
	for _, s := range services {
		if err := n.WaitTerminators(ctx, s.name, 1); err != nil {
			t.Fatal(err)
		}
	}

	dialer := sdkContext(t, client)
	appData := func(port string) []byte {
		data, err := json.Marshal(map[string]string{"dst_protocol": "tcp", "dst_ip": "127.0.0.1", "dst_port": port})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name    string
		service string
		appData []byte
	}{
		{name: "tunnel host to the host.v1 address", service: "fixed"},
		{name: "tunnel host forwards the dialed address and port", service: "forwarding", appData: appData(echoPort)},
		{name: "sdk listener", service: "sdk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := dialEventually(ctx, dialer, tt.service, &sdk.DialOptions{ConnectTimeout: 10 * time.Second, AppData: tt.appData})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := roundTrip(conn); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("tunnel host refuses a port outside allowedPortRanges", func(t *testing.T) {
		outside := strconv.Itoa(echo.Port%60000 + 1)
		conn, err := dialer.DialWithOptions("forwarding", &sdk.DialOptions{ConnectTimeout: 10 * time.Second, AppData: appData(outside)})
		if err == nil {
			defer conn.Close()
			if err := roundTrip(conn); err == nil {
				t.Fatalf("port %s is not allowed, yet a round trip through it worked", outside)
			}
		}
	})
}

func TestNetworkManagesEntitiesThroughTheCLI(t *testing.T) {
	n, ctx := startNetwork(t)

	names := func(entityType, filter string) []string {
		t.Helper()
		list, err := n.List(ctx, entityType, filter)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, raw := range list {
			var e struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e.Name)
		}
		return out
	}

	t.Run("quickstart made the router policies", func(t *testing.T) {
		if got := names("edge-router-policies", `name="all-endpoints-public-routers"`); len(got) != 1 {
			t.Errorf("edge router policies named all-endpoints-public-routers: %v", got)
		}
		if got := names("service-edge-router-policies", `name="all-routers-all-services"`); len(got) != 1 {
			t.Errorf("service edge router policies named all-routers-all-services: %v", got)
		}
	})

	t.Run("create, update and delete a service", func(t *testing.T) {
		cfgID, err := n.CreateConfig(ctx, "svc-host", HostV1{Protocol: "tcp", Address: "127.0.0.1", Port: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.UpdateConfig(ctx, "svc-host", HostV1{Protocol: "udp", Address: "127.0.0.1", Port: 2}); err != nil {
			t.Fatal(err)
		}
		cfgs, err := n.List(ctx, "configs", `name="svc-host"`)
		if err != nil || len(cfgs) != 1 {
			t.Fatalf("configs named svc-host: %d, %v", len(cfgs), err)
		}
		var cfg struct {
			ID   string `json:"id"`
			Data HostV1 `json:"data"`
		}
		if err := json.Unmarshal(cfgs[0], &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.ID != cfgID || cfg.Data.Protocol != "udp" || cfg.Data.Port != 2 {
			t.Errorf("updated config = %+v, want id %s with udp port 2", cfg, cfgID)
		}

		interceptID, err := n.CreateConfig(ctx, "svc-intercept", InterceptV1{
			Protocols: []string{"udp"}, Addresses: []string{"10.1.2.3"}, PortRanges: []PortRange{{Low: 53, High: 53}},
		})
		if err != nil {
			t.Fatal(err)
		}
		id, err := n.CreateService(ctx, Service{Name: "svc", Configs: []string{"svc-host"}, RoleAttributes: []string{"a", "b"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.UpdateService(ctx, "svc", ServiceUpdate{Configs: []string{}}); err == nil {
			t.Error("UpdateService with an empty config list succeeded, though the CLI cannot clear configs")
		}
		err = n.UpdateService(ctx, "svc", ServiceUpdate{
			Name: "svc-renamed", Configs: []string{"svc-intercept"}, RoleAttributes: []string{},
		})
		if err != nil {
			t.Fatal(err)
		}
		list, err := n.List(ctx, "services", fmt.Sprintf("id=%q", id))
		if err != nil || len(list) != 1 {
			t.Fatalf("services with id %s: %d, %v", id, len(list), err)
		}
		var svc struct {
			Name           string   `json:"name"`
			Configs        []string `json:"configs"`
			RoleAttributes []string `json:"roleAttributes"`
		}
		if err := json.Unmarshal(list[0], &svc); err != nil {
			t.Fatal(err)
		}
		if svc.Name != "svc-renamed" || len(svc.Configs) != 1 || svc.Configs[0] != interceptID || len(svc.RoleAttributes) != 0 {
			t.Errorf("updated service = %+v, want name svc-renamed, configs [%s] and no role attributes", svc, interceptID)
		}
		if err := n.DeleteService(ctx, "svc-renamed"); err != nil {
			t.Fatal(err)
		}
		if got := names("services", fmt.Sprintf("id=%q", id)); len(got) != 0 {
			t.Errorf("service %s still listed after delete: %v", id, got)
		}
	})

	t.Run("policies are created", func(t *testing.T) {
		if _, err := n.CreateEdgeRouterPolicy(ctx, "erp", []string{"#all"}, []string{"#all"}); err != nil {
			t.Fatal(err)
		}
		if _, err := n.CreateServiceEdgeRouterPolicy(ctx, "serp", []string{"#all"}, []string{"#all"}); err != nil {
			t.Fatal(err)
		}
		if got := names("edge-router-policies", `name="erp"`); len(got) != 1 {
			t.Errorf("edge router policies named erp: %v", got)
		}
		if got := names("service-edge-router-policies", `name="serp"`); len(got) != 1 {
			t.Errorf("service edge router policies named serp: %v", got)
		}
	})

	t.Run("failures name the command and its output", func(t *testing.T) {
		if _, err := n.CreateIdentity(ctx, "twice"); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			run  func() error
			want []string
		}{
			{
				name: "duplicate identity",
				run:  func() error { _, err := n.CreateIdentity(ctx, "twice"); return err },
				want: []string{"ziti edge create identity twice", "duplicate"},
			},
			{
				name: "config failing its schema",
				run: func() error {
					_, err := n.CreateConfig(ctx, "bad", RawConfig{Type: "host.v1", JSON: json.RawMessage(`{"nonsense":true}`)})
					return err
				},
				want: []string{"ziti edge create config bad host.v1", "nonsense"},
			},
			{
				name: "deleting what does not exist",
				run:  func() error { return n.DeleteService(ctx, "missing") },
				want: []string{"ziti edge delete service missing", "Found 0"},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.run()
				var cmdErr *CommandError
				if !errors.As(err, &cmdErr) {
					t.Fatalf("error %v is not a *CommandError", err)
				}
				for _, want := range tt.want {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
			})
		}
	})
}
