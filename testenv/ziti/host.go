package ziti

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// HostProcess is a `ziti tunnel host` process: the Go tunneler hosting the
// services an identity may bind, forwarding their connections as their
// host.v1 configs say.
type HostProcess struct {
	identity Identity
	proc     *process
	once     sync.Once
	err      error
}

// Host starts `ziti tunnel host` for identity. It returns once the process
// runs; use WaitTerminators to know when a service is hosted. The network
// stops it on Close, or call Stop.
func (n *Network) Host(ctx context.Context, identity Identity) (*HostProcess, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("host %s: network closed", identity.Name)
	}
	logPath := filepath.Join(n.logDir, n.uniqueNameLocked("host-"+identity.Name)+".log")
	args := []string{"tunnel", "host", "--identity", identity.File, "--cli-agent=false"}
	proc, err := startProcess(n.bin, args, n.env, logPath, nil)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", identity.Name, err)
	}
	h := &HostProcess{identity: identity, proc: proc}
	n.hosts = append(n.hosts, h)
	return h, nil
}

// LogPath is the file that receives the tunneler's output.
func (h *HostProcess) LogPath() string { return h.proc.logPath }

// Stop ends the tunneler. Calling it again does nothing.
func (h *HostProcess) Stop() error { return h.stop() }

func (h *HostProcess) stop() error {
	h.once.Do(func() { h.err = h.proc.stop() })
	return h.err
}

// WaitTerminators waits until the service named service has at least count
// terminators, that is until that many hosts are ready to take its
// connections.
func (n *Network) WaitTerminators(ctx context.Context, service string, count int) error {
	ticker := time.NewTicker(readyPoll)
	defer ticker.Stop()
	for {
		got, err := n.terminators(ctx, service)
		if err == nil && got >= count {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d terminators of service %s (have %d, last error %v): %w",
				count, service, got, err, ctx.Err())
		case <-ticker.C:
		}
	}
}

// terminators counts the terminators of the service named service.
func (n *Network) terminators(ctx context.Context, service string) (int, error) {
	list, err := n.List(ctx, "terminators", fmt.Sprintf("service.name=%q limit none", service))
	if err != nil {
		return 0, err
	}
	return len(list), nil
}
