package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/zfw-go/zfw/zfw/event"
)

// Monitor implements Controller: the Firewall's events, of one
// interface or all.
func (l *Local) Monitor(ctx context.Context, iface string) (<-chan event.Event, error) {
	events, err := l.fw.Events(ctx)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	out := make(chan event.Event, 64)
	go func() {
		defer close(out)
		for ev := range events {
			if iface != AllInterfaces && ev.Interface != iface {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				for range events { // until Events closes it
				}
				return
			}
		}
	}()
	return out, nil
}

// Monitor implements Controller. It takes a connection of its own to
// the socket: the server streams the events on it until ctx ends.
func (c *Client) Monitor(ctx context.Context, iface string) (<-chan event.Event, error) {
	mc, err := Dial(ctx, c.path)
	if err != nil {
		return nil, err
	}
	// The first answer says whether the server monitors; events follow.
	if _, err := mc.do(ctx, request{Op: opMonitor, Interface: iface}); err != nil {
		mc.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { mc.conn.Close() })
	mc.conn.SetDeadline(timeZero)
	out := make(chan event.Event, 64)
	go func() {
		defer close(out)
		defer stop()
		defer mc.conn.Close()
		for {
			line, err := readLine(mc.r)
			if err != nil {
				return
			}
			var resp response
			if err := json.Unmarshal(line, &resp); err != nil || resp.Event == nil {
				return
			}
			select {
			case out <- *resp.Event:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// monitor answers opMonitor: an answer, then every event of the interface
// asked for as a line of its own, until the client hangs up or the
// server stops.
func (s *Server) monitor(ctx context.Context, conn *net.UnixConn, r *bufio.Reader, req request) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := s.ctl.Monitor(ctx, req.Interface)
	if err != nil {
		writeResponse(conn, errorResponse(err))
		return
	}
	if err := writeResponse(conn, response{Version: ProtocolVersion}); err != nil {
		return
	}
	s.log.WithField("interface", req.Interface).Info("control socket: monitor started")
	defer s.log.WithField("interface", req.Interface).Info("control socket: monitor ended")
	// The client sends nothing more: a read returns when it hangs up.
	go func() {
		r.ReadByte()
		cancel()
	}()
	for ev := range events {
		if err := writeResponse(conn, response{Version: ProtocolVersion, Event: &ev}); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.WithError(err).Debug("control socket: monitor write")
			}
			cancel()
		}
	}
}
