package control

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSocketIsPrivate(t *testing.T) {
	_, s := serve(t, memFirewall(t))
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
}

func TestListenReplacesAStaleSocketOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "zfw.sock")
	// A socket whose server is gone.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	fw := memFirewall(t)
	s, err := Listen(path, fw, ServerOptions{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer s.Close()
	if _, err := Listen(path, fw, ServerOptions{}); err == nil || !strings.Contains(err.Error(), "another process serves it") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file, fw, ServerOptions{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
}

func TestCloseRemovesTheSocket(t *testing.T) {
	s, err := Listen(filepath.Join(t.TempDir(), "zfw.sock"), memFirewall(t), ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	c, err := Dial(context.Background(), s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
	if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
		t.Errorf("socket still there after Close: %v", err)
	}
	if _, err := c.Version(context.Background()); err == nil {
		t.Error("a client's connection outlived the server")
	}
}

func TestServerRefusesBadRequests(t *testing.T) {
	_, s := serve(t, memFirewall(t))
	conn, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	for _, tc := range []struct{ req, want string }{
		{`{"version":2,"op":"list"}`, "protocol version 2 not supported"},
		{`{"version":1,"op":"explode"}`, `unknown operation "explode"`},
		{`{"version":1,"op":"insert"}`, "insert: no rule"},
		{`{"version":1,"op":"delete"}`, "delete: no match"},
		{`not json`, "bad request"},
	} {
		if _, err := conn.Write([]byte(tc.req + "\n")); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var resp response
		if err := json.Unmarshal(line, &resp); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(resp.Error, tc.want) {
			t.Errorf("%s: error %q, want %q", tc.req, resp.Error, tc.want)
		}
	}
}

func TestClientHonoursContext(t *testing.T) {
	c, _ := serve(t, memFirewall(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Insert(ctx, rule(4000, "a")); err == nil {
		t.Error("Insert with a cancelled context succeeded")
	}
}
