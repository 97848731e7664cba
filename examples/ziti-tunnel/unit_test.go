package main

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/intercept/dns"
	"github.com/zfw-go/zfw/intercept/ziti"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    config
		level   logrus.Level
		wantErr string
	}{
		{
			name:  "defaults",
			args:  []string{"run", "--identity", "id.json", "--interface", "eth0"},
			want:  config{Identity: "id.json", Interfaces: []string{"eth0"}, DNSAddr: dns.DefaultAddr, DNSRange: dns.DefaultRange, PinPath: zfw.DefaultPinPath, RefreshInterval: 15 * time.Second, UDPIdleTimeout: 5 * time.Minute},
			level: logrus.InfoLevel,
		},
		{
			name: "every flag; interfaces repeated and comma-separated",
			args: []string{"run", "--identity=c.json", "--interface", "eth0,eth1", "--interface", "eth2", "--dns", "10.0.0.1:5353",
				"--dns-range", "100.96.0.0/12", "--pin-path", "/sys/fs/bpf/t", "--refresh", "2s", "--udp-idle", "30s", "--log-level", "debug"},
			want: config{Identity: "c.json", Interfaces: []string{"eth0", "eth1", "eth2"}, DNSAddr: "10.0.0.1:5353",
				DNSRange: netip.MustParsePrefix("100.96.0.0/12"), PinPath: "/sys/fs/bpf/t", RefreshInterval: 2 * time.Second, UDPIdleTimeout: 30 * time.Second},
			level: logrus.DebugLevel,
		},
		{
			name:  "empty --dns runs no DNS server",
			args:  []string{"run", "--identity", "id.json", "--interface", "eth0", "--dns", ""},
			want:  config{Identity: "id.json", Interfaces: []string{"eth0"}, DNSRange: dns.DefaultRange, PinPath: zfw.DefaultPinPath, RefreshInterval: 15 * time.Second, UDPIdleTimeout: 5 * time.Minute},
			level: logrus.InfoLevel,
		},
		{name: "no subcommand", args: []string{"--identity", "id.json"}, wantErr: "usage"},
		{name: "identity missing", args: []string{"run", "--interface", "eth0"}, wantErr: "--identity is required"},
		{name: "interface missing", args: []string{"run", "--identity", "id.json"}, wantErr: "--interface is required"},
		{name: "bad range", args: []string{"run", "--identity", "id.json", "--interface", "eth0", "--dns-range", "100.64.0.0"}, wantErr: "--dns-range"},
		{name: "bad level", args: []string{"run", "--identity", "id.json", "--interface", "eth0", "--log-level", "loud"}, wantErr: "--log-level"},
		{name: "stray argument", args: []string{"run", "--identity", "id.json", "--interface", "eth0", "extra"}, wantErr: "unexpected arguments: extra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, level, err := parseArgs(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Interfaces, tt.want.Interfaces) {
				t.Errorf("interfaces %q, want %q", cfg.Interfaces, tt.want.Interfaces)
			}
			cfg.Interfaces, tt.want.Interfaces = nil, nil
			if cfg.Identity != tt.want.Identity || cfg.DNSAddr != tt.want.DNSAddr || cfg.DNSRange != tt.want.DNSRange ||
				cfg.PinPath != tt.want.PinPath || cfg.RefreshInterval != tt.want.RefreshInterval || cfg.UDPIdleTimeout != tt.want.UDPIdleTimeout {
				t.Errorf("config %+v, want %+v", cfg, tt.want)
			}
			if level != tt.level {
				t.Errorf("level %s, want %s", level, tt.level)
			}
		})
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dialed, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	accepted, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close(); accepted.Close() })
	return dialed.(*net.TCPConn), accepted.(*net.TCPConn)
}

func TestPipe(t *testing.T) {
	tests := []struct {
		name string
		// server plays the far end: it gets the request (until EOF or
		// not) and answers.
		server    func(c *net.TCPConn)
		wantReply string
	}{
		{
			name: "each side's half-close reaches the other, which may still answer",
			server: func(c *net.TCPConn) {
				req, _ := io.ReadAll(c) // ends only if the client's half-close got through
				io.WriteString(c, "re: "+string(req))
				c.CloseWrite()
			},
			wantReply: "re: request",
		},
		{
			name: "a reset ends the flow",
			server: func(c *net.TCPConn) {
				io.WriteString(c, "partial")
				time.Sleep(50 * time.Millisecond)
				c.SetLinger(0)
				c.Close()
			},
			wantReply: "partial",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, a := tcpPair(t)
			b, server := tcpPair(t)
			piped := make(chan struct{})
			go func() {
				defer close(piped)
				stop := func() { a.Close(); b.Close() }
				pipe(a, b, stop)
			}()
			go tt.server(server)
			client.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(client, "request")
			client.CloseWrite()
			got, _ := io.ReadAll(client)
			if string(got) != tt.wantReply {
				t.Errorf("client got %q, want %q", got, tt.wantReply)
			}
			select {
			case <-piped:
			case <-time.After(10 * time.Second):
				t.Fatal("pipe did not return after both directions ended")
			}
		})
	}
}

func TestListenerSetKeepsAServicePortAcrossProtocolChanges(t *testing.T) {
	ns := testenv.NewTestNamespace(t, "listeners")
	tun, err := newTunneler(config{Identity: "unused", Interfaces: []string{"lo"}, InNamespace: ns.Do, Logger: testenv.Logger(t, logrus.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	ls := newListenerSet(tun)
	tun.listeners = ls
	t.Cleanup(ls.closeAll)
	ctx := context.Background()
	spec := ziti.ListenerSpec{ServiceID: "s1", ServiceName: "one"}
	steps := []struct {
		protocols        []intercept.Protocol
		wantTCP, wantUDP bool
	}{
		{protocols: []intercept.Protocol{intercept.TCP, intercept.UDP}, wantTCP: true, wantUDP: true},
		{protocols: []intercept.Protocol{intercept.TCP}, wantTCP: true},
		{protocols: []intercept.Protocol{intercept.UDP}, wantUDP: true},
		{protocols: []intercept.Protocol{intercept.UDP, intercept.TCP}, wantTCP: true, wantUDP: true},
	}
	var port uint16
	for k, step := range steps {
		spec.Protocols, spec.Port = step.protocols, port
		got, err := ls.Open(ctx, spec)
		if err != nil {
			t.Fatalf("step %d: %v", k, err)
		}
		if port != 0 && got != port {
			t.Fatalf("step %d: port %d, want the service's port %d kept", k, got, port)
		}
		port = got
		// Probe inside the namespace: a bound port refuses a second
		// bind of the same protocol.
		err = ns.Do(func() error {
			addr := netip.AddrPortFrom(loopback, port).String()
			if l, err := net.Listen("tcp", addr); err == nil {
				l.Close()
				if step.wantTCP {
					t.Errorf("step %d: no TCP listener on %s", k, addr)
				}
			} else if !step.wantTCP {
				t.Errorf("step %d: TCP %s still bound: %v", k, addr, err)
			}
			if pc, err := net.ListenPacket("udp", addr); err == nil {
				pc.Close()
				if step.wantUDP {
					t.Errorf("step %d: no UDP listener on %s", k, addr)
				}
			} else if !step.wantUDP {
				t.Errorf("step %d: UDP %s still bound: %v", k, addr, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := ls.Close("s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ls.Open(ctx, ziti.ListenerSpec{ServiceID: "s2", ServiceName: "two", Protocols: []intercept.Protocol{intercept.TCP}}); err != nil {
		t.Fatalf("open after close: %v", err)
	}
	ls.closeAll()
	if _, err := ls.Open(ctx, ziti.ListenerSpec{ServiceID: "s3", ServiceName: "three", Protocols: []intercept.Protocol{intercept.TCP}}); err == nil {
		t.Error("Open after closeAll succeeded")
	}
}
