package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/zfw-go/zfw/zfw"
)

// Client talks to a control socket. It is safe for concurrent use;
// requests are answered one at a time.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	path string
	// broken is the I/O error that left the connection out of step.
	broken error
}

var _ Controller = (*Client)(nil)

// Dial connects to the control socket at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &Client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), path: path}, nil
}

// timeZero clears a connection's deadline.
var timeZero time.Time

// Close hangs up.
func (c *Client) Close() error { return c.conn.Close() }

// Insert implements Controller.
func (c *Client) Insert(ctx context.Context, r Rule) (Change, error) {
	resp, err := c.do(ctx, request{Op: opInsert, Rule: &r})
	return resp.Change, err
}

// Delete implements Controller.
func (c *Client) Delete(ctx context.Context, m Match) (Change, error) {
	resp, err := c.do(ctx, request{Op: opDelete, Match: &m})
	return resp.Change, err
}

// List implements Controller.
func (c *Client) List(ctx context.Context) (Listing, error) {
	resp, err := c.do(ctx, request{Op: opList})
	if err != nil {
		return Listing{}, err
	}
	if resp.Listing == nil {
		return Listing{}, errors.New("control socket: list: empty answer")
	}
	return *resp.Listing, nil
}

// Flush implements Controller.
func (c *Client) Flush(ctx context.Context, d Direction) error {
	_, err := c.do(ctx, request{Op: opFlush, Direction: d})
	return err
}

// Version implements Controller: the server's version.
func (c *Client) Version(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, request{Op: opVersion})
	return resp.Server, err
}

// Interfaces implements Controller.
func (c *Client) Interfaces(ctx context.Context) ([]zfw.Interface, error) {
	resp, err := c.do(ctx, request{Op: opInterfaces})
	if err != nil {
		return nil, err
	}
	return resp.Interfaces, nil
}

// SetInterface implements Controller.
func (c *Client) SetInterface(ctx context.Context, name, setting string, on bool) error {
	_, err := c.do(ctx, request{Op: opSetInterface, Interface: name, Setting: setting, On: on})
	return err
}

func (c *Client) do(ctx context.Context, req request) (response, error) {
	req.Version = ProtocolVersion
	b, err := json.Marshal(req)
	if err != nil {
		return response{}, fmt.Errorf("control socket: %s: %w", req.Op, err)
	}
	if err := ctx.Err(); err != nil {
		return response{}, fmt.Errorf("control socket: %s: %w", req.Op, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return response{}, c.broken
	}
	deadline, _ := ctx.Deadline() // zero: none
	c.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return response{}, c.ioError(ctx, req.Op, err)
	}
	line, err := readLine(c.r)
	if err != nil {
		return response{}, c.ioError(ctx, req.Op, err)
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return response{}, fmt.Errorf("control socket: %s: bad answer: %w", req.Op, err)
	}
	if resp.Error != "" {
		return resp, &remoteError{msg: resp.Error, notFound: resp.NotFound}
	}
	if resp.Version != ProtocolVersion {
		return resp, fmt.Errorf("control socket: %s: answer of protocol version %d, want %d", req.Op, resp.Version, ProtocolVersion)
	}
	return resp, nil
}

// ioError reports a failed exchange; the connection is unusable after it.
func (c *Client) ioError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	err = fmt.Errorf("control socket %s: %s: %w", c.path, op, err)
	c.broken = err
	return err
}

// readLine reads one newline-terminated message.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxMessage {
			return nil, fmt.Errorf("message longer than %d bytes", maxMessage)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
