package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces are bind-mounted, the
// directory `ip netns` uses, so `ip netns exec NAME …` reaches every
// namespace this package creates.
const NetnsDir = "/run/netns"

// MaxNameLen is the longest namespace name NewNamespace accepts: the
// length of one file name (NAME_MAX), since the name is a file in NetnsDir.
const MaxNameLen = 255

// Namespace is a named network namespace created by this package. It is
// bind-mounted at NetnsDir/Name like one made by `ip netns add`, so it
// outlives the process that made it until Close (or CleanupStale, or
// `ip netns del`) removes it.
//
// A Namespace is safe for concurrent use. Its methods other than Name and
// Close must not be used after Close.
type Namespace struct {
	name string
	path string

	mu     sync.RWMutex
	ns     netns.NsHandle  // open fd on the namespace; -1 once closed
	nl     *netlink.Handle // netlink sockets inside the namespace; nil once closed
	closed bool            // the NetnsDir entry is gone
}

// NewNamespace creates the network namespace name, bind-mounted at
// NetnsDir/name exactly as `ip netns add` does (NetnsDir becomes a shared
// mount point the first time), and brings its loopback interface up.
//
// name must be 1 to MaxNameLen characters from [A-Za-z0-9_.-] and must not
// start with '.' or '-'. NewNamespace fails if a namespace of that name
// already exists. If it fails, nothing it made is left behind.
//
// The namespace is empty but for lo: it has no route out of itself, so
// nothing sent inside it can reach the host's networks.
func NewNamespace(name string) (*Namespace, error) {
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("testenv: create netns %q: %w", name, err)
	}
	n, err := newNamespace(name)
	if err != nil {
		return nil, fmt.Errorf("testenv: create netns %s: %w", name, err)
	}
	return n, nil
}

func newNamespace(name string) (n *Namespace, err error) {
	if err := prepareNetnsDir(); err != nil {
		return nil, err
	}
	path := filepath.Join(NetnsDir, name)
	// O_EXCL: an existing namespace of the same name is an error, never
	// adopted or replaced.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	n = &Namespace{name: name, path: path, ns: netns.None()}
	defer func() {
		if err != nil {
			if cerr := n.release(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
			}
		}
	}()

	// Make the namespace on a thread of its own and pin it to the file; the
	// thread then returns to the namespace it came from.
	unshare := func() error { return unix.Unshare(unix.CLONE_NEWNET) }
	pin := func() error {
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", path, err)
		}
		return nil
	}
	if err := onNetnsThread(unshare, pin); err != nil {
		return n, err
	}

	if n.ns, err = netns.GetFromPath(path); err != nil {
		return n, fmt.Errorf("open %s: %w", path, err)
	}
	if n.nl, err = netlink.NewHandleAt(n.ns); err != nil {
		return n, fmt.Errorf("netlink handle: %w", err)
	}
	lo, err := n.nl.LinkByName("lo")
	if err != nil {
		return n, fmt.Errorf("find lo: %w", err)
	}
	if err := n.nl.LinkSetUp(lo); err != nil {
		return n, fmt.Errorf("set lo up: %w", err)
	}
	return n, nil
}

// validName reports whether name can be a namespace name: a single file
// name in NetnsDir that is also harmless on a command line.
func validName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("name is %d bytes long, more than %d", len(name), MaxNameLen)
	}
	if name[0] == '.' || name[0] == '-' {
		return errors.New("name must not start with '.' or '-'")
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == '-'
		if !ok {
			return fmt.Errorf("invalid character %q in name (allowed: A-Z a-z 0-9 _ . -)", c)
		}
	}
	return nil
}

// prepareNetnsDir creates NetnsDir and makes it a shared mount point, as
// iproute2 does, so that the namespace mounts in it propagate to other
// mount namespaces (such as those `ip netns exec` makes) and their
// unmounting does too.
func prepareNetnsDir() error {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return err
	}
	made := false
	for {
		err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || made {
			return fmt.Errorf("make %s a shared mount: %w", NetnsDir, err)
		}
		// EINVAL: not a mount point yet; bind it onto itself and retry.
		if err := unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount %s onto itself: %w", NetnsDir, err)
		}
		made = true
	}
}

// removeNamed unmounts and removes a NetnsDir entry. An entry that is not
// mounted (left by a crash between creating and mounting it, or by a
// reboot) or that is already gone is not an error. The namespace itself
// ends when its last user (process, open fd, socket) goes.
func removeNamed(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// Name returns the namespace's name, as `ip netns list` shows it.
func (n *Namespace) Name() string { return n.name }

// Path returns the namespace's bind mount, NetnsDir/Name.
func (n *Namespace) Path() string { return n.path }

// String returns the namespace's name.
func (n *Namespace) String() string { return n.name }

// Handle returns an open handle on the namespace, for netns.Set, netlink's
// NsFd and the like. It belongs to n: do not close it; it is closed by
// Close, after which Handle returns netns.None().
func (n *Namespace) Handle() netns.NsHandle {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.ns
}

// Netlink returns a netlink handle whose sockets live inside the namespace,
// so links, addresses and routes can be configured without Do. It belongs
// to n: do not close it; it is closed by Close, after which Netlink
// returns nil.
func (n *Namespace) Netlink() *netlink.Handle {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.nl
}

// DialTCP opens a TCP connection from inside n to dst (host:port). The
// socket stays in n for its whole life, whichever goroutine uses it.
func (n *Namespace) DialTCP(dst string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", dst, timeout)
		return err
	})
	return c, err
}

// ReadProcNet reads a file of n's /proc/net, such as "tcp6" or "netstat".
// It reads /proc/thread-self/net: /proc/net is /proc/self/net, which shows
// the namespace of the process's main thread, not of the thread Do
// switched.
func (n *Namespace) ReadProcNet(name string) ([]byte, error) {
	var b []byte
	err := n.Do(func() error {
		var err error
		b, err = os.ReadFile(filepath.Join("/proc/thread-self/net", name))
		return err
	})
	return b, err
}

// Do runs fn on an OS thread switched into the namespace and returns fn's
// error. fn runs on a new goroutine locked to its thread while Do waits, so
// the caller's own thread never changes namespace. Afterwards the thread is
// switched back and unlocked; if switching back fails, the thread is left
// locked so that it ends with the goroutine and never runs other code in
// the wrong namespace, and Do reports that error too.
//
// Sockets fn opens stay in the namespace and may be used after Do returns
// (a listener opened in Do accepts in the namespace forever). Goroutines fn
// starts do not run in the namespace. A panic in fn is re-raised in Do's
// caller, and runtime.Goexit in fn (as t.FailNow does) ends Do's caller's
// goroutine too, so t.Fatal inside fn behaves as in the test's own goroutine.
func (n *Namespace) Do(fn func() error) error {
	if err := n.do(fn); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return nil
}

// do is Do with errors not prefixed by the package name.
func (n *Namespace) do(fn func() error) error {
	enter := func() error {
		n.mu.RLock()
		defer n.mu.RUnlock()
		if n.ns == netns.None() {
			return errors.New("namespace is closed")
		}
		return netns.Set(n.ns)
	}
	if err := onNetnsThread(enter, fn); err != nil {
		return fmt.Errorf("in netns %s: %w", n.name, err)
	}
	return nil
}

// doOutcome is how fn ended on an onNetnsThread goroutine.
type doOutcome struct {
	err        error // enter's (wrapped) or fn's error
	restoreErr error // switching the thread back failed; the thread dies
	panicked   bool
	panicVal   any
	goexit     bool
}

// onNetnsThread runs enter and then fn on a fresh goroutine locked to its
// OS thread, then returns the thread to the network namespace it started
// in; see Do.
func onNetnsThread(enter, fn func() error) error {
	done := make(chan doOutcome, 1)
	go func() {
		var out doOutcome
		finished := false
		defer func() {
			if !finished {
				if r := recover(); r != nil {
					out.panicked, out.panicVal = true, r
				} else {
					out.goexit = true
				}
			}
			done <- out
		}()
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			out.err = fmt.Errorf("get current netns: %w", err)
			finished = true
			return
		}
		defer func() {
			if err := netns.Set(orig); err != nil {
				// Stay locked: the thread exits with this goroutine.
				out.restoreErr = fmt.Errorf("restore thread netns: %w", err)
			} else {
				runtime.UnlockOSThread()
			}
			_ = orig.Close()
		}()
		if err := enter(); err != nil {
			out.err = fmt.Errorf("enter netns: %w", err)
			finished = true
			return
		}
		out.err = fn()
		finished = true
	}()
	out := <-done
	switch {
	case out.panicked:
		panic(out.panicVal)
	case out.goexit:
		runtime.Goexit()
	}
	return errors.Join(out.err, out.restoreErr)
}

// Command returns a command that runs name with args inside the namespace,
// through `ip netns exec` (so iproute2 must be installed), which also gives
// it a /sys of the namespace. It is exec.CommandContext's command: ctx
// kills it. Handy for ping, ss, ip and tcpdump in debugging and demos.
func (n *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// Exec runs name with args inside the namespace (see Command) and returns
// its combined standard output and error. A failure's error includes that
// output.
func (n *Namespace) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		cmd := strings.Join(append([]string{name}, args...), " ")
		return out, fmt.Errorf("testenv: in netns %s: %s: %w: %s", n.name, cmd, err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// WaitIPv6Ready waits until no IPv6 address in the namespace is tentative
// (still in duplicate address detection), polling until ctx ends. Addresses
// that this package adds are never tentative (they carry IFA_F_NODAD and
// DAD is off in its topologies); this is for addresses added otherwise. An
// address whose DAD failed is an error.
func (n *Namespace) WaitIPv6Ready(ctx context.Context) error {
	if err := n.waitIPv6Ready(ctx); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return nil
}

// waitIPv6Ready is WaitIPv6Ready with errors not prefixed by the package
// name.
func (n *Namespace) waitIPv6Ready(ctx context.Context) error {
	h := n.Netlink()
	if h == nil {
		return fmt.Errorf("netns %s: namespace is closed", n.name)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		addrs, err := h.AddrList(nil, netlink.FAMILY_V6)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return fmt.Errorf("netns %s: list IPv6 addresses: %w", n.name, err)
		}
		var pending []string
		if err == nil {
			for _, a := range addrs {
				if a.Flags&unix.IFA_F_DADFAILED != 0 {
					return fmt.Errorf("netns %s: duplicate address detection failed for %s", n.name, a.IPNet)
				}
				if a.Flags&unix.IFA_F_TENTATIVE != 0 {
					pending = append(pending, a.IPNet.String())
				}
			}
			if len(pending) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netns %s: IPv6 addresses still tentative %v: %w", n.name, pending, ctx.Err())
		case <-tick.C:
		}
	}
}

// Close deletes the namespace: it closes n's handles and removes its
// NetnsDir entry, after which the kernel destroys the namespace, and with
// it its interfaces (a veth's peer in another namespace goes too), as soon
// as nothing else holds it (a process inside it, or a socket opened inside
// it that is still open). Close is idempotent; after a failure it may be
// called again.
func (n *Namespace) Close() error {
	if err := n.release(); err != nil {
		return fmt.Errorf("testenv: delete netns %s: %w", n.name, err)
	}
	return nil
}

func (n *Namespace) release() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	if n.nl != nil {
		n.nl.Close()
		n.nl = nil
	}
	var errs []error
	if n.ns != netns.None() {
		if err := n.ns.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close handle: %w", err))
		}
		n.ns = netns.None()
	}
	if err := removeNamed(n.path); err != nil {
		errs = append(errs, err)
	} else {
		n.closed = true
	}
	return errors.Join(errs...)
}
