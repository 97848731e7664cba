package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/conntrack"
	"github.com/zfw-go/zfw/zfw/event"
)

// ProtocolVersion is the version of the socket protocol. A server
// answers requests of other versions with an error.
const ProtocolVersion = 1

// DefaultSocketDir holds the control sockets, one per pin folder.
const DefaultSocketDir = "/run/zfw"

// maxMessage bounds one request or response line.
const maxMessage = 16 << 20

// SocketPath is where the owner of the dataplane pinned at pinPath
// serves it: DefaultSocketDir/<last element of pinPath>.sock, e.g.
// /run/zfw/zfw.sock for zfw.DefaultPinPath.
func SocketPath(pinPath string) string {
	if pinPath == "" {
		pinPath = zfw.DefaultPinPath
	}
	return filepath.Join(DefaultSocketDir, filepath.Base(filepath.Clean(pinPath))+".sock")
}

// Operations.
const (
	opInsert  = "insert"
	opDelete  = "delete"
	opList    = "list"
	opFlush   = "flush"
	opVersion = "version"
	// opInterfaces lists the managed interfaces and their settings.
	opInterfaces = "interfaces"
	// opSetInterface turns one setting of an interface (or all) on or off.
	opSetInterface = "set-interface"
	// opMembers reads one of the dataplane's lists; opSetMember adds to
	// it or removes from it.
	opMembers   = "members"
	opSetMember = "set-member"
	// opMonitor turns the connection into a stream of events.
	opMonitor = "monitor"
	// opAttach attaches an interface (On) or detaches it; opTunnel sets
	// the Ziti tun of tunnel mode (none: off).
	opAttach = "attach"
	opTunnel = "tunnel"
	// opSessions lists the tracked sessions.
	opSessions = "sessions"
)

type request struct {
	Version int    `json:"version"`
	Op      string `json:"op"`
	Rule    *Rule  `json:"rule,omitempty"`
	Match   *Match `json:"match,omitempty"`
	// Interface, Setting and On are opSetInterface's.
	Interface string `json:"interface,omitzero"`
	Setting   string `json:"setting,omitzero"`
	On        bool   `json:"on,omitzero"`
	// Direction is opFlush's; empty flushes both.
	Direction Direction `json:"direction,omitzero"`
	// List and Member are opMembers' and opSetMember's (with On).
	List   string `json:"list,omitzero"`
	Member string `json:"member,omitzero"`
}

type response struct {
	Version int    `json:"version"`
	Error   string `json:"error,omitzero"`
	// NotFound marks an error that wraps zfw.ErrNotFound.
	NotFound bool     `json:"notFound,omitzero"`
	Change   Change   `json:"change,omitzero"`
	Listing  *Listing `json:"listing,omitempty"`
	Server   string   `json:"server,omitzero"`
	// Interfaces answers opInterfaces; never nil in that answer.
	Interfaces []zfw.Interface `json:"interfaces,omitempty"`
	// Members answers opMembers; never nil in that answer.
	Members []string `json:"members,omitempty"`
	// Sessions answers opSessions.
	Sessions []conntrack.Session `json:"sessions,omitempty"`
	// Event is one event of an opMonitor stream.
	Event *event.Event `json:"event,omitempty"`
}

// remoteError is an error the server reported.
type remoteError struct {
	msg      string
	notFound bool
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool { return e.notFound && target == zfw.ErrNotFound }

func errorResponse(err error) response {
	return response{Version: ProtocolVersion, Error: err.Error(), NotFound: errors.Is(err, zfw.ErrNotFound)}
}

// writeResponse sends one response line.
func writeResponse(w io.Writer, resp response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(errorResponse(fmt.Errorf("encode answer: %w", err)))
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
