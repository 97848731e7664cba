package zfw_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// netstat reads one TcpExt counter of ns (/proc/net/netstat).
func netstat(t *testing.T, ns *testenv.Namespace, name string) int64 {
	t.Helper()
	b, err := ns.ReadProcNet("netstat")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != "TcpExt:" {
			continue
		}
		if j := slices.Index(keys, name); j > 0 && j < len(vals) {
			n, _ := strconv.ParseInt(vals[j], 10, 64)
			return n
		}
	}
	t.Fatalf("no TcpExt %s", name)
	return 0
}

// Many short connections, the server closing first after its response
// (so its side of each ends in TIME_WAIT), from 8 clients, as an
// independent harness measured connections per second (issue 14). Each
// client cycles through a few source ports, as clients' port ranges do
// under load, so new SYNs keep meeting the old connections' TIME_WAIT on
// their tuple. No SYN may need sending again: each that does costs its
// connection a retransmission, and a client at 8 connections a
// millisecond half its rate. Without interception the kernel hands such a
// SYN to the listener at once; with it, zfw_sk_lookup must.
func TestEndToEndSYNsOnTuplesInTimeWaitNeedNoRetransmit(t *testing.T) {
	for _, tc := range []struct {
		name string
		// intercept: through zfw; foreign: the listener is another
		// process's, as OpenZiti's router's are.
		intercept, foreign bool
	}{{"plain listener", false, false}, {"zfw", true, false}, {"zfw, the listener another process's", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			topo := testenv.NewTestTopology(t)
			var fw *zfw.Firewall
			serve := func(ln net.Listener) {
				testenv.Serve(ln.Accept, func(c net.Conn) {
					buf := make([]byte, 64)
					io.ReadFull(c, buf)
					c.Write(buf)
					c.Close() // the server closes first
				})
			}
			dst := netip4(topo.RouterClientAddr4.Addr().String(), 9999)
			switch {
			case tc.foreign:
				// As OpenZiti's router: its listener, its rule through
				// zfw -I (the rules API), not an intercept of this
				// process.
				holdListenerElsewhere(t, topo.Router, "127.0.0.1:9999")
				r := newRouter(t, topo, zfw.Options{})
				fw = r.fw
				_, err := r.fw.Rules().Add(t.Context(), zfw.Rule{
					Action: zfw.TProxy, Protocol: intercept.TCP,
					Destination: netip.MustParsePrefix("10.98.0.0/24"),
					Ports:       intercept.PortRange{Low: 8080, High: 8080},
					TProxyPort:  9999,
				})
				if err != nil {
					t.Fatal(err)
				}
				dst = "10.98.0.7:8080"
			case tc.intercept:
				r := newRouter(t, topo, zfw.Options{})
				fw = r.fw
				tl := listenTCP(t, topo.Router, "127.0.0.1:9999")
				serve(tl)
				if err := r.fw.Register(t.Context(), tcpIntercept("svc", "10.98.0.0/24", 8080, tl)); err != nil {
					t.Fatal(err)
				}
				dst = "10.98.0.7:8080"
			default:
				var ln net.Listener
				if err := topo.Router.Do(func() error {
					var err error
					ln, err = net.Listen("tcp", dst)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				serve(ln)
			}
			before := netstat(t, topo.Client, "TCPSynRetrans")
			var done, slow atomic.Int64
			var wg sync.WaitGroup
			deadline := time.Now().Add(3 * time.Second)
			for client := range 8 {
				wg.Go(func() {
					topo.Client.Do(func() error {
						msg := make([]byte, 64)
						for i := 0; time.Now().Before(deadline); i++ {
							start := time.Now()
							// The client's side of the last connection
							// from a port may not have closed yet: then
							// the next port.
							port := 42000 + client*4 + i%4
							d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: topo.ClientAddr4.Addr().AsSlice(), Port: port}}
							c, err := d.Dial("tcp", dst)
							if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) {
								continue
							}
							if err != nil {
								t.Errorf("dial from port %d: %v", port, err)
								return nil
							}
							c.Write(msg)
							io.ReadFull(bufio.NewReader(c), msg)
							c.Close()
							done.Add(1)
							if time.Since(start) > 500*time.Millisecond {
								slow.Add(1)
							}
						}
						return nil
					})
				})
			}
			wg.Wait()
			retrans := netstat(t, topo.Client, "TCPSynRetrans") - before
			t.Logf("%d connections in 3 s, %d slower than 500 ms, %d SYNs retransmitted", done.Load(), slow.Load(), retrans)
			if retrans != 0 {
				t.Errorf("%d SYNs retransmitted over %d connections", retrans, done.Load())
			}
			if fw != nil {
				st, err := fw.Stats()
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("tuples in use %d, handed over %d", st.TupleInUse, st.TupleHandedOver)
				if st.TupleInUse == 0 || st.TupleHandedOver == 0 {
					t.Errorf("no SYN met its tuple in TIME_WAIT (%d) or was handed over (%d): nothing proven", st.TupleInUse, st.TupleHandedOver)
				}
			}
		})
	}
}

func netip4(addr string, port int) string { return fmt.Sprintf("%s:%d", addr, port) }

// holdListenerElsewhere starts this test binary as a helper process in
// ns that holds a TPROXY listener at addr (see TestMain), until the test
// ends.
func holdListenerElsewhere(t *testing.T, ns *testenv.Namespace, addr string) {
	t.Helper()
	helper(t, ns, envListen+"="+addr)
}

// helper starts this test binary as a helper process in ns with env set
// (see TestMain), waits for its "ready", and returns the rest of its
// output, a line at a time, until the test ends it.
func helper(t *testing.T, ns *testenv.Namespace, env string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), env)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cancel()
		cmd.Wait()
	})
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimSpace(line)
		}
	}()
	return lines
}
