package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/zfw-go/zfw/zfw"
)

// Attach implements Controller.
func (l *Local) Attach(ctx context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	names, err := l.attachable(name)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := l.fw.Attach(ctx, zfw.Interface{Name: n}); err != nil {
			return err
		}
	}
	return nil
}

// attachable is the interfaces name stands for: itself, or for
// AllInterfaces every interface of the namespace but the Ziti tun
// (ziti*), which takes the XDP program (SetTunnel) instead.
func (l *Local) attachable(name string) ([]string, error) {
	if name != AllInterfaces {
		return []string{name}, nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("attach all: %w", err)
	}
	var out []string
	for _, ifc := range ifs {
		if !strings.HasPrefix(ifc.Name, "ziti") {
			out = append(out, ifc.Name)
		}
	}
	return out, nil
}

// Detach implements Controller.
func (l *Local) Detach(ctx context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if name != AllInterfaces {
		return l.fw.Detach(ctx, name)
	}
	var errs []error
	for _, ifc := range l.fw.Interfaces() {
		errs = append(errs, l.fw.Detach(ctx, ifc.Name))
	}
	return errors.Join(errs...)
}

// SetTunnel implements Controller.
func (l *Local) SetTunnel(ctx context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.fw.Tunnel()
	t.Interface = name
	if err := l.fw.SetTunnel(ctx, t); err != nil {
		return err
	}
	return nil
}

// Attach implements Controller.
func (c *Client) Attach(ctx context.Context, name string) error {
	_, err := c.do(ctx, request{Op: opAttach, Interface: name, On: true})
	return err
}

// Detach implements Controller.
func (c *Client) Detach(ctx context.Context, name string) error {
	_, err := c.do(ctx, request{Op: opAttach, Interface: name})
	return err
}

// SetTunnel implements Controller.
func (c *Client) SetTunnel(ctx context.Context, name string) error {
	_, err := c.do(ctx, request{Op: opTunnel, Interface: name})
	return err
}
