package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestForwardLoopbackReachesTheHostsLoopback: a connection to the
// forwarded address inside the namespace reaches the server on the
// host's loopback, half-closes included; before the forward and after
// Close nothing answers there.
func TestForwardLoopbackReachesTheHostsLoopback(t *testing.T) {
	n := NewTestNamespace(t, "fwd")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			req, _ := io.ReadAll(c)
			c.Write(append([]byte("host:"), req...))
			c.Close()
		}
	})
	addr := l.Addr().String()
	exchange := func() (string, error) {
		c, err := n.DialTCP(addr, time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return "", err
		}
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		return string(got), err
	}
	if got, err := exchange(); err == nil {
		t.Fatalf("before forwarding, %s inside the namespace answered %q", addr, got)
	}
	f, err := n.ForwardLoopback(addr)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := exchange(); err != nil || got != "host:ping" {
		t.Errorf("through the forward: %q, %v; want \"host:ping\"", got, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got, err := exchange(); err == nil {
		t.Errorf("after Close, %s inside the namespace answered %q", addr, got)
	}
}
