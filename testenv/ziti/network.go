// Package ziti runs a real OpenZiti network on loopback for tests: it builds
// the ziti command from the Go module proxy (Binary), starts a controller and
// an edge router with `ziti edge quickstart` (Start), and wraps the
// `ziti edge` commands that create identities, configs, services and
// policies. Everything lives in a temporary directory and is removed when the
// network is closed; nothing reads or writes the user's ziti configuration.
//
// The ziti command is built from the separate module in zitibuild (never
// part of this module's dependencies) and cached, keyed by its version and
// the hash of that module's go.mod and go.sum. $ZFW_ZITI_BIN names a
// prebuilt binary instead; $ZFW_ZITI_CACHE moves the cache. CI builds it
// ahead of the tests, so no test pays for the build, with
//
//	go run ./testenv/ziti/cmd/zitibin
//
// which prints the binary's path.
package ziti

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

const (
	// AdminUser and AdminPassword are the administrator credentials quickstart
	// creates.
	AdminUser     = "admin"
	AdminPassword = "admin"
	// RouterName is the name of the edge router quickstart creates. It carries
	// the role attribute "public".
	RouterName = "router-quickstart"
	// Address is the loopback address the controller and router advertise.
	Address = "127.0.0.1"

	// defaultStartTimeout bounds Start when Options.StartTimeout is zero.
	defaultStartTimeout = 2 * time.Minute
	// startAttempts is how often Start retries when a chosen port was taken
	// between choosing and binding it.
	startAttempts = 3
	// readyPoll is how often Start checks whether the network is ready.
	readyPoll = 500 * time.Millisecond
)

// Options tune Start. The zero value builds or finds the binary with
// Binary and uses the system temporary directory.
type Options struct {
	// Binary is the ziti executable. Empty means Binary(ctx, BinaryOptions{Logger}).
	Binary string
	// Dir is where the network's temporary directory is made; empty means
	// os.TempDir.
	Dir string
	// StartTimeout bounds the wait for the controller and router; zero means
	// two minutes.
	StartTimeout time.Duration
	// Logger reports progress; nil discards.
	Logger logrus.FieldLogger
}

// Network is a running controller and edge router made by `ziti edge
// quickstart` on 127.0.0.1, with a ziti CLI logged in as the administrator.
// Its methods are safe for concurrent use.
type Network struct {
	bin        string
	dir        string // everything the network writes
	home       string // quickstart --home
	cliDir     string // ZITI_CONFIG_DIR of the CLI commands
	logDir     string
	env        []string
	ctrlPort   int
	routerPort int
	log        logrus.FieldLogger

	mu      sync.Mutex
	qs      *process
	hosts   []*HostProcess
	routers []*Router
	names   map[string]int // per-prefix counters for unique file names
	closed  bool
}

// Start runs `ziti edge quickstart` with a fresh home directory and free
// ports on 127.0.0.1, waits until the controller answers and the router is
// online, and logs the CLI in. Close stops it; on error nothing is left
// running, and the error names the quickstart log, which is kept.
func Start(ctx context.Context, opts Options) (*Network, error) {
	log := opts.Logger
	if log == nil {
		discard := logrus.New()
		discard.SetOutput(io.Discard)
		log = discard
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = Binary(ctx, BinaryOptions{Logger: log}); err != nil {
			return nil, err
		}
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}

	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		n, err := newNetwork(bin, opts.Dir, log)
		if err != nil {
			return nil, err
		}
		err = n.start(ctx, timeout)
		if err == nil {
			return n, nil
		}
		retry := errors.Is(err, errPortTaken)
		n.close(true)
		lastErr = fmt.Errorf("start ziti network (log %s): %w", n.LogPath(), err)
		if !retry {
			break
		}
		log.WithError(err).Warn("quickstart lost a port race; retrying")
	}
	return nil, lastErr
}

// newNetwork lays out the network's directories and environment.
func newNetwork(bin, parent string, log logrus.FieldLogger) (*Network, error) {
	dir, err := os.MkdirTemp(parent, "zfw-ziti-")
	if err != nil {
		return nil, fmt.Errorf("ziti network directory: %w", err)
	}
	n := &Network{
		bin:    bin,
		dir:    dir,
		home:   filepath.Join(dir, "quickstart"),
		cliDir: filepath.Join(dir, "cli"),
		logDir: filepath.Join(dir, "logs"),
		names:  map[string]int{},
	}
	userHome := filepath.Join(dir, "user")
	tmp := filepath.Join(dir, "tmp")
	for _, d := range []string{n.home, n.cliDir, n.logDir, userHome, tmp, n.identityDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("ziti network directory: %w", err)
		}
	}
	// The ziti commands see a private home, temp and config directory, so
	// nothing they write lands outside dir, and no ZITI_* setting of the
	// caller leaks in.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "ZITI_"), strings.HasPrefix(name, "XDG_"),
			name == "HOME", name == "TMPDIR":
			continue
		}
		n.env = append(n.env, kv)
	}
	n.env = append(n.env,
		"HOME="+userHome,
		"TMPDIR="+tmp,
		"ZITI_CONFIG_DIR="+n.cliDir,
	)
	n.log = log.WithField("network", filepath.Base(dir))
	return n, nil
}

// errPortTaken marks a start that failed because a port was in use.
var errPortTaken = errors.New("port already in use")

// start runs quickstart and waits until the network is usable.
func (n *Network) start(ctx context.Context, timeout time.Duration) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	n.ctrlPort, n.routerPort = ports[0], ports[1]

	// The quickstart process logs in by itself; give it its own CLI
	// directory so it does not race the commands run here.
	qsEnv := append([]string{}, n.env...)
	qsEnv = append(qsEnv,
		"ZITI_CONFIG_DIR="+filepath.Join(n.home, "cli"),
		"ZITI_CTRL_BIND_ADDRESS="+Address,
		"ZITI_CTRL_EDGE_BIND_ADDRESS="+Address,
	)
	qs, err := startProcess(n.bin, n.quickstartArgs(), qsEnv, n.LogPath(), nil)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.qs = qs
	n.mu.Unlock()

	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := n.waitReady(ctx); err != nil {
		return err
	}
	n.log.WithFields(logrus.Fields{
		"controller": n.ControllerAddr(),
		"router":     n.RouterAddr(),
		"took":       time.Since(begin).Round(time.Millisecond),
	}).Info("ziti network ready")
	return nil
}

// quickstartArgs are the arguments of the quickstart command.
func (n *Network) quickstartArgs() []string {
	return []string{
		"edge", "quickstart",
		"--home", n.home,
		"--ctrl-address", Address,
		"--ctrl-port", strconv.Itoa(n.ctrlPort),
		"--router-address", Address,
		"--router-port", strconv.Itoa(n.routerPort),
		"--username", AdminUser,
		"--password", AdminPassword,
	}
}

// waitReady logs in once the controller answers and then waits for the
// router to be online, failing early when quickstart exits.
func (n *Network) waitReady(ctx context.Context) error {
	ready := func(ctx context.Context) (bool, error) {
		if _, err := n.Run(ctx, "edge", "login", n.ControllerAddr(),
			"--username", AdminUser, "--password", AdminPassword, "--yes"); err != nil {
			return false, nil
		}
		online, err := n.routerOnline(ctx)
		if err != nil {
			return false, nil
		}
		return online, nil
	}
	var last error
	ticker := time.NewTicker(readyPoll)
	defer ticker.Stop()
	for {
		if n.qs.exited() {
			tail := n.logTail()
			if bytes.Contains(tail, []byte("address already in use")) {
				return fmt.Errorf("quickstart exited (%v): %w: %s", n.qs.err, errPortTaken, tail)
			}
			return fmt.Errorf("quickstart exited early (%v): %s", n.qs.err, tail)
		}
		attemptCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := ready(attemptCtx)
		cancel()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for controller %s and router %s (%v): %w; log tail: %s",
				n.ControllerAddr(), RouterName, last, ctx.Err(), n.logTail())
		case <-ticker.C:
		}
	}
}

// routerOnline reports whether the controller sees the quickstart router
// online.
func (n *Network) routerOnline(ctx context.Context) (bool, error) {
	return n.online(ctx, RouterName)
}

// logTail returns the end of the quickstart log, for error messages.
func (n *Network) logTail() []byte { return tail(n.LogPath()) }

// tail returns the end of the log at path, for error messages.
func tail(path string) []byte {
	const max = 2000
	data, err := os.ReadFile(path)
	if err != nil {
		return []byte(err.Error())
	}
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return bytes.TrimSpace(data)
}

// ControllerAddr is the host:port of the controller's edge API, control
// plane and management API.
func (n *Network) ControllerAddr() string {
	return net.JoinHostPort(Address, strconv.Itoa(n.ctrlPort))
}

// ControllerURL is the URL of the controller's APIs.
func (n *Network) ControllerURL() string { return "https://" + n.ControllerAddr() }

// RouterAddr is the host:port of the edge router's edge and link listener.
func (n *Network) RouterAddr() string {
	return net.JoinHostPort(Address, strconv.Itoa(n.routerPort))
}

// Dir is the temporary directory that holds everything the network writes.
func (n *Network) Dir() string { return n.dir }

// LogPath is the file that receives quickstart's output.
func (n *Network) LogPath() string { return filepath.Join(n.logDir, "quickstart.log") }

// Binary is the ziti executable the network runs.
func (n *Network) Binary() string { return n.bin }

// identityDir holds enrollment tokens and identity files.
func (n *Network) identityDir() string { return filepath.Join(n.dir, "identities") }

// Close stops every process the network started (routers StartRouter
// ran and hosting tunnelers first, then quickstart) and removes its directory.
func (n *Network) Close() error { return n.close(false) }

// close stops the processes and removes the network directory, except the
// logs when keepLogs is set.
func (n *Network) close(keepLogs bool) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	hosts, routers, qs := n.hosts, n.routers, n.qs
	n.hosts, n.routers = nil, nil
	n.mu.Unlock()

	var errs []error
	for _, r := range routers {
		errs = append(errs, r.stop())
	}
	for _, h := range hosts {
		errs = append(errs, h.stop())
	}
	if qs != nil {
		errs = append(errs, qs.stop())
	}
	errs = append(errs, n.removeFiles(keepLogs))
	return errors.Join(errs...)
}

// removeFiles deletes the network directory, or everything but the logs.
func (n *Network) removeFiles(keepLogs bool) error {
	if !keepLogs {
		if err := os.RemoveAll(n.dir); err != nil {
			return fmt.Errorf("remove ziti network directory: %w", err)
		}
		return nil
	}
	entries, err := os.ReadDir(n.dir)
	if err != nil {
		return fmt.Errorf("remove ziti network directory: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if path := filepath.Join(n.dir, e.Name()); path != n.logDir {
			errs = append(errs, os.RemoveAll(path))
		}
	}
	return errors.Join(errs...)
}

// uniqueName returns prefix, or prefix-N when prefix was used before, so
// files of entities that were deleted and made again do not collide.
func (n *Network) uniqueName(prefix string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.uniqueNameLocked(prefix)
}

// uniqueNameLocked is uniqueName with n.mu held.
func (n *Network) uniqueNameLocked(prefix string) string {
	n.names[prefix]++
	if c := n.names[prefix]; c > 1 {
		return fmt.Sprintf("%s-%d", prefix, c)
	}
	return prefix
}

// freePorts returns count distinct TCP ports that were free on Address.
func freePorts(count int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range count {
		l, err := net.Listen("tcp", net.JoinHostPort(Address, "0"))
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
