package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/zfw"
)

// ServerOptions configure Listen.
type ServerOptions struct {
	// Logger receives the server's logs. Default: warnings and above to
	// standard error.
	Logger logrus.FieldLogger
}

// Server serves a Firewall's rules on a unix socket.
type Server struct {
	ln   *net.UnixListener
	path string
	ctl  Controller
	log  logrus.FieldLogger

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// Listen makes the control socket at path (see SocketPath) for fw: the
// folder is created mode 0700 if missing, the socket is mode 0600. A
// socket left at path by a process that is gone is replaced; one that
// still answers is an error.
func Listen(path string, fw *zfw.Firewall, opts ServerOptions) (*Server, error) {
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		log = l
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket folder: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &Server{ln: ln, path: path, ctl: NewLocal(fw), log: log, conns: make(map[net.Conn]struct{})}, nil
}

// removeStale removes a socket at path that nobody serves.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("control socket %s: exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: another process serves it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket: remove stale %s: %w", path, err)
	}
	return nil
}

// Serve listens at path for fw until ctx ends.
func Serve(ctx context.Context, fw *zfw.Firewall, path string, opts ServerOptions) error {
	s, err := Listen(path, fw, opts)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve answers clients until ctx ends or Close is called, then closes
// the server and returns nil; it returns an error if accepting fails
// otherwise.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				s.wg.Wait()
				return nil
			}
			s.Close()
			return fmt.Errorf("control socket: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			continue
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(ctx, conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
			conn.Close()
		}()
	}
}

// Close stops the server, ends its connections and removes the socket.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	return s.ln.Close() // unlinks the socket
}

// handle answers one client's requests until it hangs up.
func (s *Server) handle(ctx context.Context, conn *net.UnixConn) {
	log := s.log
	if err := checkPeer(conn); err != nil {
		log.WithError(err).Warn("control socket: refused a client")
		writeResponse(conn, errorResponse(err))
		return
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		line, err := readLine(r)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !isEOF(err) {
				log.WithError(err).Debug("control socket: read")
				writeResponse(conn, errorResponse(err))
			}
			return
		}
		if req, ok := monitorRequest(line); ok {
			s.monitor(ctx, conn, r, req)
			return
		}
		resp := s.answer(ctx, line)
		if err := writeResponse(conn, resp); err != nil {
			log.WithError(err).Debug("control socket: write")
			return
		}
	}
}

// monitorRequest reports whether line asks for opMonitor, which takes
// over the connection.
func monitorRequest(line []byte) (request, bool) {
	var req request
	if json.Unmarshal(line, &req) != nil || req.Op != opMonitor || req.Version != ProtocolVersion {
		return request{}, false
	}
	return req, true
}

func (s *Server) answer(ctx context.Context, line []byte) response {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		return errorResponse(fmt.Errorf("bad request: %w", err))
	}
	if req.Version != ProtocolVersion {
		return errorResponse(fmt.Errorf("protocol version %d not supported (this server speaks %d)", req.Version, ProtocolVersion))
	}
	resp := response{Version: ProtocolVersion}
	var err error
	switch req.Op {
	case opInsert:
		if req.Rule == nil {
			return errorResponse(errors.New("insert: no rule"))
		}
		resp.Change, err = s.ctl.Insert(ctx, *req.Rule)
	case opDelete:
		if req.Match == nil {
			return errorResponse(errors.New("delete: no match"))
		}
		resp.Change, err = s.ctl.Delete(ctx, *req.Match)
	case opList:
		var l Listing
		l, err = s.ctl.List(ctx)
		resp.Listing = &l
	case opFlush:
		err = s.ctl.Flush(ctx, req.Direction)
	case opVersion:
		resp.Server, err = s.ctl.Version(ctx)
	case opInterfaces:
		resp.Interfaces, err = s.ctl.Interfaces(ctx)
	case opSetInterface:
		err = s.ctl.SetInterface(ctx, req.Interface, req.Setting, req.On)
	case opAttach:
		if req.On {
			err = s.ctl.Attach(ctx, req.Interface)
		} else {
			err = s.ctl.Detach(ctx, req.Interface)
		}
	case opSessions:
		resp.Sessions, err = s.ctl.Sessions(ctx)
	case opTunnel:
		err = s.ctl.SetTunnel(ctx, req.Interface)
	case opMembers:
		resp.Members, err = s.ctl.Members(ctx, req.List)
		if err == nil && resp.Members == nil {
			resp.Members = []string{}
		}
	case opSetMember:
		err = s.ctl.SetMember(ctx, req.List, req.Member, req.On)
	default:
		err = fmt.Errorf("unknown operation %q", req.Op)
	}
	if err != nil {
		return errorResponse(err)
	}
	if req.Op == opAttach || req.Op == opTunnel {
		s.log.WithFields(logrus.Fields{"op": req.Op, "interface": req.Interface, "on": req.On}).Info("control socket: attachment changed")
	}
	if req.Op == opSetMember {
		s.log.WithFields(logrus.Fields{"list": req.List, "member": req.Member, "on": req.On}).Info("control socket: list changed")
	}
	if req.Op == opSetInterface {
		s.log.WithFields(logrus.Fields{"interface": req.Interface, "setting": req.Setting, "on": req.On}).Info("control socket: interface setting changed")
	}
	if req.Op == opInsert || req.Op == opDelete || req.Op == opFlush {
		s.log.WithFields(logrus.Fields{"op": req.Op, "change": resp.Change}).Debug("control socket: rules changed")
	}
	return resp
}

// checkPeer admits root and the server's own user.
func checkPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	var (
		cred *unix.Ucred
		cerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("permission denied: user %d may not change the firewall", cred.Uid)
	}
	return nil
}
