package dataplane

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// skLookupPin names the namespace's sk_lookup link under the links
// folder. It has no "-": DetachStale, which reads <interface>-<hook>
// names, leaves it alone.
const skLookupPin = "sk_lookup"

// AttachSkLookup puts zfw_sk_lookup on the dataplane's namespace, once:
// the kernel runs it whenever it looks for a listener there. The link is
// pinned with the others, and taken over from an earlier process. A
// kernel without sk_lookup programs (before 5.9) gets none, and SYNs an
// old socket lets go wait for their client to send them again.
func (d *Dataplane) AttachSkLookup() error {
	if d.skLookup != nil {
		return nil
	}
	pin := filepath.Join(d.cfg.PinPath, linksDir, skLookupPin)
	if old, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := old.Update(d.objs.ZfwSkLookup); err == nil {
			d.skLookup = old
			return nil
		}
		old.Unpin()
		old.Close()
	}
	l, err := link.AttachNetNs(int(d.ns), d.objs.ZfwSkLookup)
	if errors.Is(err, ebpf.ErrNotSupported) {
		d.log.Infof("sk_lookup needs Linux 5.9 or later and kernel %s has none: a SYN on the tuple of a connection in TIME_WAIT waits for the client to resend it", kernelRelease())
		return nil
	}
	if err != nil {
		return fmt.Errorf("attach sk_lookup: %w", err)
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return fmt.Errorf("attach sk_lookup: pin link: %w", err)
	}
	d.skLookup = l
	return nil
}

// closeSkLookup detaches the namespace's sk_lookup program unless keep,
// which leaves it to its pin.
func (d *Dataplane) closeSkLookup(keep bool) error {
	if d.skLookup == nil {
		return nil
	}
	l := d.skLookup
	d.skLookup = nil
	if !keep {
		l.Unpin()
	}
	return l.Close()
}
