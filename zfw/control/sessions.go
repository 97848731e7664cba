package control

import (
	"context"
	"fmt"

	"github.com/zfw-go/zfw/zfw/conntrack"
)

// Sessions implements Controller.
func (l *Local) Sessions(ctx context.Context) ([]conntrack.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := l.fw.Sessions().List(conntrack.Filter{})
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	return s, nil
}

// Sessions implements Controller.
func (c *Client) Sessions(ctx context.Context) ([]conntrack.Session, error) {
	resp, err := c.do(ctx, request{Op: opSessions})
	if err != nil {
		return nil, err
	}
	return resp.Sessions, nil
}
