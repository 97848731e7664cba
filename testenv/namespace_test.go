package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// hostCmd runs a command in the test's own (the host's) namespace.
func hostCmd(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ioTimeout)
	defer cancel()
	out, err := osexec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// The main goroutine keeps the process's main thread to itself, so that Do
// never runs on it: tests then see what a program whose main thread is busy
// sees (TestReadProcNetReadsTheNamespacesTables depends on this).
func init() { runtime.LockOSThread() }

func TestDoRunsInNamespace(t *testing.T) {
	n := NewTestNamespace(t, "do")

	// Keep this goroutine on one thread to compare its namespace before
	// and after.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	hostIfs, err := ifaceNames()
	if err != nil {
		t.Fatal(err)
	}

	var inside []string
	var sameNs bool
	err = n.Do(func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		sameNs = cur.Equal(n.Handle())
		inside, err = ifaceNames()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sameNs {
		t.Error("Do ran fn outside the namespace")
	}
	if !slices.Equal(inside, []string{"lo"}) {
		t.Errorf("interfaces inside %v, want [lo] (host has %v)", inside, hostIfs)
	}

	cur, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if !cur.Equal(orig) {
		t.Error("caller's thread changed namespace")
	}
	after, err := ifaceNames()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(after, hostIfs) {
		t.Errorf("caller sees %v after Do, %v before", after, hostIfs)
	}
}

func TestDoRestoresThreads(t *testing.T) {
	n := NewTestNamespace(t, "threads")
	orig, err := netns.GetFromPid(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()

	// Many Do calls at once, then many goroutines each locked to a thread
	// of the pool: none of those threads may still be in n.
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if err := n.Do(func() error { time.Sleep(time.Millisecond); return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for range 64 {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cur, err := netns.Get()
			if err != nil {
				t.Error(err)
				return
			}
			defer cur.Close()
			if !cur.Equal(orig) {
				t.Error("a thread of the pool is left in another namespace")
			}
			time.Sleep(time.Millisecond)
		})
	}
	wg.Wait()
}

func TestDoErrorsPanicsAndGoexit(t *testing.T) {
	n := NewTestNamespace(t, "err")

	sentinel := errors.New("from fn")
	err := n.Do(func() error { return sentinel })
	if !errors.Is(err, sentinel) || !strings.Contains(err.Error(), "testenv: in netns "+n.Name()) {
		t.Errorf("Do error %q, want the wrapped fn error", err)
	}

	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		_ = n.Do(func() error { panic("boom") })
		t.Error("Do returned after fn panicked")
	}()

	done := make(chan bool)
	go func() {
		reached := false
		defer func() { done <- reached }()
		_ = n.Do(func() error { runtime.Goexit(); return nil })
		reached = true
	}()
	if <-done {
		t.Error("Do returned after fn called runtime.Goexit")
	}

	// The namespace still works after all that.
	if err := n.Do(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestNamespaceLoopbackAndExec(t *testing.T) {
	n := NewTestNamespace(t, "lo")

	err := n.Do(func() error {
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		if lo.Flags&net.FlagUp == 0 {
			return errors.New("lo is down")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Loopback traffic inside the namespace.
	for _, addr := range []string{"127.0.0.1", "::1"} {
		srv := startEcho(t, n, netip.MustParseAddr(addr), "lo")
		got, _, err := roundTrip(n, srv.addr, "ping")
		if err != nil || got != "lo:ping" {
			t.Errorf("loopback %s: %q, %v", addr, got, err)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), ioTimeout)
	defer cancel()
	out, err := n.Exec(ctx, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], ": lo: ") || !strings.Contains(lines[0], "UP") {
		t.Errorf("ip link inside:\n%s", out)
	}
	_, err = n.Exec(ctx, "ip", "link", "show", "no-such-link")
	if err == nil || !strings.Contains(err.Error(), "no-such-link") || !strings.Contains(err.Error(), n.Name()) {
		t.Errorf("failing Exec: error %v, want one with the command and its output", err)
	}
}

func TestNamespaceCloseIsIdempotent(t *testing.T) {
	RequirePrivileged(t)
	name := TestPrefix + uniqueID() + "-close"
	n, err := NewNamespace(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	if n.Name() != name || n.Path() != filepath.Join(NetnsDir, name) {
		t.Fatalf("Name %q Path %q", n.Name(), n.Path())
	}
	list, err := hostCmd(t, "ip", "netns", "list")
	if err != nil || !strings.Contains(list, name) {
		t.Fatalf("ip netns list (%v):\n%s", err, list)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(t, n.Path()) {
		t.Errorf("%s exists after Close", n.Path())
	}
	list, err = hostCmd(t, "ip", "netns", "list")
	if err != nil || strings.Contains(list, name) {
		t.Errorf("ip netns list after Close (%v):\n%s", err, list)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.Do(func() error { return nil }); err == nil {
		t.Error("Do after Close succeeded")
	}
	if n.Netlink() != nil || n.Handle().IsOpen() {
		t.Error("handles still open after Close")
	}
	if err := n.WaitIPv6Ready(t.Context()); err == nil {
		t.Error("WaitIPv6Ready after Close succeeded")
	}
}

func TestNewNamespaceFailuresLeaveNothing(t *testing.T) {
	RequirePrivileged(t)
	before := ownEntries(t)
	base := TestPrefix + uniqueID()
	for _, name := range []string{
		"",
		".",
		"..",
		"-" + base,
		".hidden",
		base + "/sub",
		base + " space",
		base + "\n",
		base + strings.Repeat("x", MaxNameLen),
	} {
		n, err := NewNamespace(name)
		if err == nil {
			n.Close()
			t.Errorf("NewNamespace(%q) succeeded", name)
			continue
		}
		if n != nil || !strings.HasPrefix(err.Error(), "testenv: create netns ") {
			t.Errorf("NewNamespace(%q): %v, %v", name, n, err)
		}
	}
	if got := ownEntries(t); !slices.Equal(got, before) {
		t.Errorf("namespaces %v, want %v", got, before)
	}

	// A name in use is an error that leaves the existing namespace be.
	n := NewTestNamespace(t, "dup")
	if dup, err := NewNamespace(n.Name()); err == nil {
		dup.Close()
		t.Fatal("second NewNamespace of the same name succeeded")
	} else if !errors.Is(err, os.ErrExist) {
		t.Errorf("error %v, want one that is os.ErrExist", err)
	}
	if !exists(t, n.Path()) {
		t.Fatal("the failed duplicate removed the existing namespace")
	}
	if err := n.Do(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestWaitIPv6Ready(t *testing.T) {
	n := NewTestNamespace(t, "dad")
	h := n.Netlink()
	// A veth pair with both ends inside n, and DAD left on (the kernel's
	// default): an address added without nodad is tentative for a while.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dad0"}, PeerName: "dad1"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	var l netlink.Link
	for _, name := range []string{"dad1", "dad0"} {
		var err error
		if l, err = h.LinkByName(name); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	addr := &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("fd00:201:99::1/64"))}
	if err := h.AddrAdd(l, addr); err != nil {
		t.Fatal(err)
	}
	tentative := func() bool {
		addrs, err := h.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if a.IP.Equal(addr.IP) {
				return a.Flags&unix.IFA_F_TENTATIVE != 0
			}
		}
		t.Fatal("address gone")
		return false
	}
	if !tentative() {
		t.Skip("the address was not tentative: DAD did not run")
	}
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := n.WaitIPv6Ready(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitIPv6Ready with a canceled context: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := n.WaitIPv6Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if tentative() {
		t.Error("address still tentative after WaitIPv6Ready")
	}
	t.Logf("DAD took %v", time.Since(start).Round(time.Millisecond))
}

func TestReadProcNetReadsTheNamespacesTables(t *testing.T) {
	n := NewTestNamespace(t, "procnet")
	listen := func() (net.Listener, error) { return net.Listen("tcp4", "127.0.0.1:0") }
	var inside net.Listener
	if err := n.Do(func() (err error) { inside, err = listen(); return err }); err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	host, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()

	// Do never runs on the main thread here (see init), whose namespace
	// /proc/net would show.
	for range 5 {
		table, err := n.ReadProcNet("tcp")
		if err != nil {
			t.Fatal(err)
		}
		entry := func(l net.Listener) string {
			return fmt.Sprintf("0100007F:%04X 00000000:0000 0A", l.Addr().(*net.TCPAddr).Port)
		}
		if !strings.Contains(string(table), entry(inside)) {
			t.Fatalf("the namespace's listener %s is not in its tcp table:\n%s", inside.Addr(), table)
		}
		if strings.Contains(string(table), entry(host)) {
			t.Fatalf("the host's listener %s is in the namespace's tcp table:\n%s", host.Addr(), table)
		}
	}
}
