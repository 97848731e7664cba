package ziti

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RouterOptions say how StartRouter runs an edge router beside the
// quickstart one.
type RouterOptions struct {
	// Name is the router's name; the network makes it unique.
	Name string
	// RoleAttributes are the router's role attributes.
	RoleAttributes []string
	// TunnelMode is the mode of the router's tunnel binding, as its
	// config file spells it: "host", "tproxy", or "tproxy:<diverter>".
	// Empty gives the router no tunnel binding and leaves it not
	// tunneler-enabled.
	TunnelMode string
	// Env is added to the router process's environment (a diverter it
	// runs inherits it).
	Env []string
	// Start starts the router process; nil is cmd.Start. Tests start it
	// inside a network namespace with testenv.Namespace.Do(cmd.Start);
	// the controller and the quickstart router (ControllerAddr,
	// RouterAddr) must be reachable there on 127.0.0.1.
	Start func(cmd *exec.Cmd) error
}

// Router is an edge router StartRouter runs: created on the controller,
// enrolled, running `ziti router run`, its links dialled to the
// quickstart router. Its edge listener is on 127.0.0.1 of the namespace
// it runs in; SDK clients use the quickstart router, this one is for its
// tunnel binding.
type Router struct {
	// Name and ID are the router's on the controller. A tunneler-enabled
	// router has an identity of the same name, which service policies
	// name as @Name.
	Name, ID string
	proc     *process
	once     sync.Once
	err      error
}

// StartRouter creates, enrolls and starts an edge router, and waits until
// the controller sees it online. The network stops it on Close, or call
// Stop; on error nothing is left running.
func (n *Network) StartRouter(ctx context.Context, opts RouterOptions) (*Router, error) {
	if opts.Name == "" {
		return nil, fmt.Errorf("start router: a name is required")
	}
	name := n.uniqueName(opts.Name)
	dir := filepath.Join(n.dir, "routers", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("start router %s: %w", name, err)
	}
	jwt := filepath.Join(dir, "enroll.jwt")
	args := []string{"edge-router", name, "--jwt-output-file", jwt}
	if opts.TunnelMode != "" {
		args = append(args, "--tunneler-enabled")
	}
	if len(opts.RoleAttributes) > 0 {
		args = append(args, "--role-attributes", strings.Join(opts.RoleAttributes, ","))
	}
	id, err := n.create(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("start router %s: create: %w", name, err)
	}
	// Enrolment requires an edge listener. Its port is free on the
	// host's loopback, so SDK clients there that try every router the
	// controller lists are refused rather than reach something else.
	ports, err := freePorts(1)
	if err != nil {
		return nil, fmt.Errorf("start router %s: %w", name, err)
	}
	cfg := filepath.Join(dir, "router.yml")
	if err := os.WriteFile(cfg, []byte(n.routerConfig(dir, ports[0], opts.TunnelMode)), 0o600); err != nil {
		return nil, fmt.Errorf("start router %s: %w", name, err)
	}
	if _, err := n.Run(ctx, "router", "enroll", cfg, "--jwt", jwt); err != nil {
		return nil, fmt.Errorf("start router %s: enroll: %w", name, err)
	}

	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, fmt.Errorf("start router %s: network closed", name)
	}
	logPath := filepath.Join(n.logDir, "router-"+name+".log")
	env := append(append([]string{}, n.env...), opts.Env...)
	proc, err := startProcess(n.bin, []string{"router", "run", cfg}, env, logPath, opts.Start)
	if err != nil {
		n.mu.Unlock()
		return nil, fmt.Errorf("start router %s: %w", name, err)
	}
	r := &Router{Name: name, ID: id, proc: proc}
	n.routers = append(n.routers, r)
	n.mu.Unlock()

	if err := n.waitOnline(ctx, r); err != nil {
		r.stop()
		return nil, fmt.Errorf("start router %s: %w", name, err)
	}
	return r, nil
}

// routerConfig is the config file of a router whose identity lives in
// dir: it dials links, listens for none, has an edge listener on
// edgePort, and a tunnel binding in tunnelMode unless that is empty.
func (n *Network) routerConfig(dir string, edgePort int, tunnelMode string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `v: 3
identity:
  cert: %q
  server_cert: %q
  key: %q
  ca: %q
ctrl:
  endpoint: tls:%s
link:
  dialers:
    - binding: transport
`, filepath.Join(dir, "client.cert"), filepath.Join(dir, "server.cert"),
		filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem"), n.ControllerAddr())
	edge := net.JoinHostPort(Address, strconv.Itoa(edgePort))
	fmt.Fprintf(&b, `listeners:
  - binding: edge
    address: tls:%s
    options:
      advertise: %s
`, edge, edge)
	if tunnelMode != "" {
		fmt.Fprintf(&b, `  - binding: tunnel
    options:
      mode: %q
      svcPollRate: 1s
`, tunnelMode)
	}
	b.WriteString(`edge:
  csr:
    country: US
    province: NC
    locality: Charlotte
    organization: NetFoundry
    organizationalUnit: Ziti
    sans:
      dns: [localhost]
      ip: ["127.0.0.1", "::1"]
`)
	return b.String()
}

// waitOnline waits until the controller sees r online, failing early
// when its process exits.
func (n *Network) waitOnline(ctx context.Context, r *Router) error {
	ticker := time.NewTicker(readyPoll)
	defer ticker.Stop()
	var last error
	for {
		if r.proc.exited() {
			return fmt.Errorf("router exited early (%v): %s", r.proc.err, tail(r.LogPath()))
		}
		online, err := n.online(ctx, r.Name)
		if online {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for router %s online (%v): %w; log tail: %s", r.Name, last, ctx.Err(), tail(r.LogPath()))
		case <-ticker.C:
		}
	}
}

// online reports whether the controller sees the router named name
// online.
func (n *Network) online(ctx context.Context, name string) (bool, error) {
	routers, err := n.List(ctx, "edge-routers", fmt.Sprintf("name=%q", name))
	if err != nil {
		return false, err
	}
	for _, raw := range routers {
		var r struct {
			IsOnline bool `json:"isOnline"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return false, fmt.Errorf("decode edge router: %w", err)
		}
		if r.IsOnline {
			return true, nil
		}
	}
	return false, nil
}

// LogPath is the file that receives the router's output.
func (r *Router) LogPath() string { return r.proc.logPath }

// Stop ends the router. Calling it again does nothing.
func (r *Router) Stop() error { return r.stop() }

func (r *Router) stop() error {
	r.once.Do(func() { r.err = r.proc.stop() })
	return r.err
}
