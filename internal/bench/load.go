package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The load protocol between the clients below and Server. A connection
// starts with one byte saying what it is for.
const (
	// modeRequest: a request of MessageSize bytes (the mode byte first),
	// answered by MessageSize bytes; then the server closes, so that its
	// side of the connection is left in TIME_WAIT, as a web server's is,
	// and the client's next connections may reuse such a tuple.
	modeRequest = 'r'
	// modeStream: bytes until the client shuts its side down, answered
	// by the count received as 8 bytes big-endian.
	modeStream = 's'
)

// MessageSize is the size of a request and of its response.
const MessageSize = 64

// Server answers the load clients on a listener until Close.
type Server struct {
	ln   net.Listener
	wg   sync.WaitGroup
	errs atomic.Int64
}

// Serve starts answering the clients that ln accepts.
func Serve(ln net.Listener) *Server {
	s := &Server{ln: ln}
	s.wg.Add(1)
	go s.accept()
	return s
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.errs.Add(1)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := serveConn(c); err != nil {
				s.errs.Add(1)
			}
		}()
	}
}

func serveConn(c net.Conn) error {
	defer c.Close()
	var buf [MessageSize]byte
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		return err
	}
	switch buf[0] {
	case modeRequest:
		if _, err := io.ReadFull(c, buf[1:]); err != nil {
			return err
		}
		_, err := c.Write(buf[:])
		return err
	case modeStream:
		// The receiving end on one CPU, the sender (Throughput) on
		// another: where the scheduler put them would otherwise decide
		// much of the rate.
		unpin, err := PinThread(0)
		if err != nil {
			return err
		}
		defer unpin()
		n, err := drain(c)
		if err != nil {
			return err
		}
		return binary.Write(c, binary.BigEndian, uint64(n+1))
	default:
		return fmt.Errorf("unknown mode %q", buf[0])
	}
}

// Errors is the number of connections the server failed to serve.
func (s *Server) Errors() int64 { return s.errs.Load() }

// Close stops accepting and waits for the connections being served.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// drain reads c until EOF in large reads and returns how many bytes came.
// (io.Copy to io.Discard reads 8 KiB at a time: a read call per two
// segments makes the receiving end the bottleneck of the stream.)
func drain(c net.Conn) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, err := c.Read(buf)
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// In runs fn where the client's sockets must be opened, such as inside a
// network namespace (testenv.Namespace.Do), and returns fn's error.
type In func(fn func() error) error

func dialer() *net.Dialer {
	d := &net.Dialer{Timeout: 5 * time.Second}
	d.SetMultipathTCP(false)
	return d
}

// ConnStats is what ConnRate measured.
type ConnStats struct {
	// Rate is completed connections per second.
	Rate float64
	// Connections completed.
	Connections int
	// P50 and P99 are percentiles of a connection's latency: from the
	// dial to the response read and the connection closed.
	P50, P99 time.Duration
}

// ConnRate runs clients concurrent clients against the Server at addr
// for d, each connecting, sending one request, reading the response and
// closing, over and over. Every client runs inside in, so its sockets
// are opened there.
func ConnRate(ctx context.Context, in In, addr netip.AddrPort, clients int, d time.Duration) (ConnStats, error) {
	errs := make([]error, clients)
	latencies := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[c] = in(func() error {
				dl := dialer()
				var req, resp [MessageSize]byte
				req[0] = modeRequest
				for {
					began := time.Now()
					if !began.Before(deadline) {
						return nil
					}
					if err := ctx.Err(); err != nil {
						return err
					}
					if err := exchange(ctx, dl, addr, req[:], resp[:]); err != nil {
						return err
					}
					latencies[c] = append(latencies[c], time.Since(began))
				}
			})
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return ConnStats{}, err
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	st := ConnStats{Connections: len(all), Rate: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		st.P50, st.P99 = all[len(all)/2], all[len(all)*99/100]
	}
	return st, nil
}

func exchange(ctx context.Context, dl *net.Dialer, addr netip.AddrPort, req, resp []byte) error {
	c, err := dl.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("request to %s: %w", addr, err)
	}
	if _, err := io.ReadFull(c, resp); err != nil {
		return fmt.Errorf("response from %s: %w", addr, err)
	}
	return nil
}

// Throughput sends one TCP stream to the Server at addr for d and
// returns the bits per second the server received, from the first
// connect to the server's count of what arrived. The client runs inside
// in, on a CPU other than the server's receiving end (on a machine with
// more than one).
func Throughput(ctx context.Context, in In, addr netip.AddrPort, d time.Duration) (float64, error) {
	var bits float64
	err := in(func() error {
		unpin, err := PinThread(1)
		if err != nil {
			return err
		}
		defer unpin()
		start := time.Now()
		c, err := dialer().DialContext(ctx, "tcp", addr.String())
		if err != nil {
			return fmt.Errorf("dial %s: %w", addr, err)
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		buf[0] = modeStream
		deadline := start.Add(d)
		if err := c.SetDeadline(deadline.Add(10 * time.Second)); err != nil {
			return err
		}
		for time.Now().Before(deadline) {
			if _, err := c.Write(buf); err != nil {
				return fmt.Errorf("stream to %s: %w", addr, err)
			}
			buf[0] = 0
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
		var n uint64
		if err := binary.Read(c, binary.BigEndian, &n); err != nil {
			return fmt.Errorf("count from %s: %w", addr, err)
		}
		bits = float64(n) * 8 / time.Since(start).Seconds()
		return nil
	})
	return bits, err
}
