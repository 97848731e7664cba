package ziti

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Template variables of sourceIp and dialOptions.identity. The flow
// variables are replaced for each flow; the tunneler_id ones once, when the
// service's config is applied.
const (
	VarSourceIP            = "$src_ip"
	VarSourcePort          = "$src_port"
	VarDestinationIP       = "$dst_ip"
	VarDestinationPort     = "$dst_port"
	VarDestinationHostname = "$dst_hostname"
	VarTunnelerName        = "$tunneler_id.name"
	// VarTunnelerAppData starts "$tunneler_id.appData[tag]": the value of
	// the tunneler identity's appData tag, empty when it has none.
	VarTunnelerAppData = "$tunneler_id.appData["
)

// TunnelerIdentity is what templates may take from the tunneler's own
// identity.
type TunnelerIdentity struct {
	Name    string
	AppData map[string]any
}

// Template is a sourceIp or dialOptions.identity template whose
// tunneler_id variables are already replaced. The zero Template is unset
// and expands to "".
type Template struct {
	text string
	// addrPort is set for exactly "$src_ip:$src_port", which expands to
	// the source address in host:port form (brackets for IPv6).
	addrPort bool
}

// NewTemplate parses text and replaces its tunneler_id variables with
// values from id.
func NewTemplate(text string, id TunnelerIdentity) (Template, error) {
	if err := checkTemplate(text); err != nil {
		return Template{}, err
	}
	if text == VarSourceIP+":"+VarSourcePort {
		return Template{text: text, addrPort: true}, nil
	}
	// Replace in one pass, so values taken from the identity are never
	// scanned for variables themselves.
	var b strings.Builder
	for rest := text; rest != ""; {
		start := strings.IndexByte(rest, '$')
		if start < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:start])
		rest = rest[start:]
		switch {
		case strings.HasPrefix(rest, VarTunnelerName):
			b.WriteString(id.Name)
			rest = rest[len(VarTunnelerName):]
		case strings.HasPrefix(rest, VarTunnelerAppData):
			rest = rest[len(VarTunnelerAppData):]
			end := strings.IndexByte(rest, ']')
			if v, ok := id.AppData[rest[:end]]; ok && v != nil {
				b.WriteString(fmt.Sprint(v))
			}
			rest = rest[end+1:]
		default:
			b.WriteByte('$')
			rest = rest[1:]
		}
	}
	text = b.String()
	return Template{text: text}, nil
}

// IsZero reports whether the template is unset.
func (t Template) IsZero() bool { return t.text == "" }

// String returns the template text after the tunneler_id replacement.
func (t Template) String() string { return t.text }

// Expand replaces the flow variables: the client's address src, the
// original destination dst and the destination's hostname (empty when
// unknown).
func (t Template) Expand(src, dst netip.AddrPort, dstHostname string) string {
	if t.addrPort {
		return netip.AddrPortFrom(src.Addr().Unmap(), src.Port()).String()
	}
	if !strings.Contains(t.text, "$") {
		return t.text
	}
	return strings.NewReplacer(
		VarSourceIP, src.Addr().Unmap().String(),
		VarSourcePort, strconv.Itoa(int(src.Port())),
		VarDestinationIP, dst.Addr().Unmap().String(),
		VarDestinationPort, strconv.Itoa(int(dst.Port())),
		VarDestinationHostname, dstHostname,
	).Replace(t.text)
}

// checkTemplate checks that every $tunneler_id.appData[ is closed.
func checkTemplate(text string) error {
	for rest := text; ; {
		start := strings.Index(rest, VarTunnelerAppData)
		if start < 0 {
			return nil
		}
		rest = rest[start+len(VarTunnelerAppData):]
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return errors.New("unclosed " + VarTunnelerAppData)
		}
		rest = rest[end+1:]
	}
}

// needsIdentity reports whether a template uses the tunneler's identity.
func needsIdentity(text string) bool {
	return strings.Contains(text, "$tunneler_id.")
}
