package control

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/ddos"
)

// The dataplane's lists, by the C zfw's long option names (without
// "-add"): Members reads them, SetMember changes them.
const (
	// ListDDoSPorts: the ports SYN-flood protection guards (zfw -u, -L -U).
	ListDDoSPorts = "ddos-dport"
	// ListDDoSSources: the DDoS allow-list (zfw -y, -L -Y).
	ListDDoSSources = "ddos-saddr"
	// ListDDoSBans: the sources banned now for flooding SYNs; read only
	// (banned by the dataplane, lifted by removing them).
	ListDDoSBans = "ddos-ban"
	// ListDNP3Codes: the DNP3 function codes OT filtering allows (zfw -g,
	// -L -C).
	ListDNP3Codes = "dnp3-fcode"
	// ListBindSources: the local sources (zfw.LocalSources; zfw -B, -J,
	// -F -j), a prefix as often as it was added.
	ListBindSources = "bind-saddr"
)

// memberList is how one list reads and changes its members, as text.
type memberList struct {
	members func(*zfw.Firewall) ([]string, error)
	// set adds (on) or removes one member; nil for a read-only list.
	set func(ctx context.Context, fw *zfw.Firewall, member string, on bool) error
}

func lists() map[string]memberList {
	return map[string]memberList{
		ListDDoSPorts: {
			members: func(fw *zfw.Firewall) ([]string, error) {
				ports, err := fw.DDoS().ProtectedPorts()
				return texts(ports, func(p uint16) string { return strconv.Itoa(int(p)) }), err
			},
			set: func(ctx context.Context, fw *zfw.Firewall, member string, on bool) error {
				p, err := strconv.ParseUint(member, 10, 16)
				if err != nil || p == 0 {
					return fmt.Errorf("port %q: 1 to 65535", member)
				}
				if on {
					return fw.DDoS().ProtectPorts(ctx, uint16(p))
				}
				return fw.DDoS().UnprotectPorts(ctx, uint16(p))
			},
		},
		ListDDoSSources: {
			members: func(fw *zfw.Firewall) ([]string, error) {
				srcs, err := fw.DDoS().AllowedSources()
				return texts(srcs, netip.Addr.String), err
			},
			set: func(ctx context.Context, fw *zfw.Firewall, member string, on bool) error {
				a, err := netip.ParseAddr(member)
				if err != nil || a.Zone() != "" {
					return fmt.Errorf("source %q: not an IPv4 or IPv6 address", member)
				}
				if on {
					return fw.DDoS().AllowSources(ctx, a)
				}
				return fw.DDoS().DisallowSources(ctx, a)
			},
		},
		ListDDoSBans: {
			members: func(fw *zfw.Firewall) ([]string, error) {
				bans, err := fw.DDoS().Bans()
				return texts(bans, func(b ddos.Ban) string {
					return fmt.Sprintf("%s until %s", b.Source, b.Until.UTC().Format(time.RFC3339))
				}), err
			},
		},
		ListBindSources: {
			members: func(fw *zfw.Firewall) ([]string, error) {
				ps, err := fw.LocalSources().List()
				return texts(ps, netip.Prefix.String), err
			},
			set: func(ctx context.Context, fw *zfw.Firewall, member string, on bool) error {
				p, err := netip.ParsePrefix(member)
				if err != nil {
					return fmt.Errorf("prefix %q: not an IPv4 or IPv6 prefix", member)
				}
				if on {
					return fw.LocalSources().Add(ctx, p)
				}
				return fw.LocalSources().Remove(ctx, p)
			},
		},
		ListDNP3Codes: {
			members: func(fw *zfw.Firewall) ([]string, error) {
				codes, err := fw.OT().DNP3Allowed()
				return texts(codes, func(c uint8) string { return strconv.Itoa(int(c)) }), err
			},
			set: func(ctx context.Context, fw *zfw.Firewall, member string, on bool) error {
				c, err := strconv.ParseUint(member, 0, 8)
				if err != nil {
					return fmt.Errorf("function code %q: 0 to 255", member)
				}
				if on {
					return fw.OT().AllowDNP3(ctx, uint8(c))
				}
				return fw.OT().BlockDNP3(ctx, uint8(c))
			},
		},
	}
}

func texts[T any](xs []T, text func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = text(x)
	}
	return out
}

func lookupList(name string) (memberList, error) {
	l, ok := lists()[name]
	if !ok {
		return memberList{}, fmt.Errorf("list %q: not one of %s, %s, %s, %s, %s", name, ListDDoSPorts, ListDDoSSources, ListDDoSBans, ListDNP3Codes, ListBindSources)
	}
	return l, nil
}

// Members implements Controller.
func (l *Local) Members(ctx context.Context, list string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ml, err := lookupList(list)
	if err != nil {
		return nil, err
	}
	out, err := ml.members(l.fw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", list, err)
	}
	return out, nil
}

// SetMember implements Controller.
func (l *Local) SetMember(ctx context.Context, list, member string, on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ml, err := lookupList(list)
	if err != nil {
		return err
	}
	if ml.set == nil {
		if list == ListDDoSBans && !on {
			a, err := netip.ParseAddr(member)
			if err != nil {
				return fmt.Errorf("%s: source %q: not an address", list, member)
			}
			return l.fw.DDoS().Unban(ctx, a)
		}
		return fmt.Errorf("%s: the dataplane adds to this list itself", list)
	}
	if err := ml.set(ctx, l.fw, member, on); err != nil {
		return fmt.Errorf("%s: %w", list, err)
	}
	return nil
}

// Members implements Controller.
func (c *Client) Members(ctx context.Context, list string) ([]string, error) {
	resp, err := c.do(ctx, request{Op: opMembers, List: list})
	if err != nil {
		return nil, err
	}
	return resp.Members, nil
}

// SetMember implements Controller.
func (c *Client) SetMember(ctx context.Context, list, member string, on bool) error {
	_, err := c.do(ctx, request{Op: opSetMember, List: list, Member: member, On: on})
	return err
}
