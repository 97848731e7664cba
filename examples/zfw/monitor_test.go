package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

// zfw -M prints the events of the interface asked for as they happen, in
// the C zfw's format, through the owner's socket while the owner reads
// them too; -W appends them to a file; an interrupt ends it with 0.
func TestMonitorPrintsEventsAsTheyHappen(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		toFile     bool
	}{
		{"lo", "-M lo", false},
		{"all, to a file", "-M all -W", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlace(t)
			ns := testenv.NewTestNamespace(t, "mon")
			var fw *zfw.Firewall
			err := ns.Do(func() error {
				var err error
				fw, err = zfw.New(zfw.Options{PinPath: p.pin, Interfaces: []zfw.Interface{
					{Name: "lo", InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true, Verbose: true}},
				}})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer fw.Close()
			p.serve(t, fw)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// The owner reads the events too, as edge-router does.
			owners, err := fw.Events(ctx)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for range owners {
				}
			}()

			line := tc.line
			logFile := filepath.Join(t.TempDir(), "zfw.log")
			if tc.toFile {
				line += " " + logFile
			}
			var out, errOut testenv.Buffer
			done := make(chan int, 1)
			go func() { done <- run(ctx, strings.Fields(line), p.getenv, &out, &errOut) }()
			printed := func() string {
				if !tc.toFile {
					return out.String()
				}
				b, _ := os.ReadFile(logFile)
				return string(b)
			}
			// Datagrams to a port no rule passes: default deny drops each
			// with an event, until the monitor has shown one.
			want := " : lo : INGRESS : UDP :127.0.0.1:"
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(printed(), want) && time.Now().Before(deadline) {
				ns.Do(func() error {
					c, err := net.Dial("udp", "127.0.0.1:9")
					if err == nil {
						c.Write([]byte("x"))
						c.Close()
					}
					return nil
				})
				time.Sleep(50 * time.Millisecond)
			}
			got := printed()
			if !strings.Contains(got, want) || !strings.Contains(got, "> 127.0.0.1:9 | DROP: no rule (default deny)") {
				t.Errorf("zfw %s printed:\n%s\nstderr: %s\nwant the drops of the datagrams to port 9", line, got, errOut.String())
			}
			if tc.toFile && out.String() != "" {
				t.Errorf("with -W, stdout got %q", out.String())
			}
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("zfw %s ended with exit %d: %s", line, code, errOut.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("zfw %s did not end on the interrupt", line)
			}
		})
	}
}

// A monitor ends with an error when the owner stops under it.
func TestMonitorEndsWhenTheOwnerStops(t *testing.T) {
	p := newPlace(t)
	fw := p.owner(t, false)
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.InfoLevel)
	sv, err := control.Listen(p.socket, fw, control.ServerOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- sv.Serve(ctx) }()
	defer stop()
	var out, errOut testenv.Buffer
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), []string{"-M", "all"}, p.getenv, &out, &errOut) }()
	started := func() bool {
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "monitor started") {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !started(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the monitor did not start: %s", errOut.String())
		}
	}
	stop()
	<-served
	fw.Close()
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(errOut.String(), "owner stopped") {
			t.Errorf("exit %d, %q; want 1 and that the owner stopped", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the monitor did not end when the owner stopped")
	}
}
