// Package dataplane loads the BPF objects, pins their maps under one
// folder so a restarted process adopts them, attaches the ingress program
// to interfaces (TCX, or a clsact filter where TCX is missing) and
// installs the policy routing that turns the steering mark into local
// delivery.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/maps"
)

// Config says where and how to run the dataplane.
type Config struct {
	PinPath string
	// Mark is put on steered packets; Table and RulePriority place the
	// policy route that delivers marked packets locally.
	Mark         uint32
	Table        int
	RulePriority int
	// MaxRules and MaxPrefixes size the rule maps (see Capacities).
	MaxRules, MaxPrefixes uint32
	// LegacyTC attaches with clsact filters even where TCX exists.
	LegacyTC bool
	// AdoptOnly makes Open fail, with an error wrapping ErrNoDataplane,
	// when nothing is pinned at PinPath instead of creating a dataplane.
	AdoptOnly bool
	Logger    logrus.FieldLogger
}

// Dataplane is a loaded, pinned set of BPF objects.
type Dataplane struct {
	cfg     Config
	log     logrus.FieldLogger
	objs    bpfobj.ZfwObjects
	nl      *netlink.Handle
	lock    *os.File
	adopted bool
	attach  map[string]*attachment
	xdp     map[string]link.Link // tun return programs
	// skLookup is zfw_sk_lookup on the namespace (AttachSkLookup).
	skLookup link.Link
	routing  bool
	ns       netns.NsHandle // the namespace Open ran in
}

const linksDir = "links"

// Open loads the objects, creating and pinning the maps under
// cfg.PinPath or adopting the ones a previous process left there. Only one
// process may own a pin folder at a time.
func Open(ctx context.Context, cfg Config) (*Dataplane, error) {
	if cfg.Logger == nil {
		cfg.Logger = logrus.New()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ensureBPFFS(cfg.PinPath); err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	ns, err := netns.Get()
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("current network namespace: %w", err)
	}
	d := &Dataplane{cfg: cfg, log: cfg.Logger, nl: nl, attach: make(map[string]*attachment), xdp: make(map[string]link.Link), ns: ns}
	if err := d.open(); err != nil {
		nl.Close()
		ns.Close()
		if d.lock != nil {
			d.lock.Close()
		}
		return nil, err
	}
	return d, nil
}

func (d *Dataplane) open() error {
	pin := d.cfg.PinPath
	spec, err := bpfobj.LoadZfw()
	if err != nil {
		return fmt.Errorf("load object spec: %w", err)
	}
	for name, ms := range spec.Maps {
		if strings.HasPrefix(name, ".") {
			continue // .rodata and friends belong to the program
		}
		ms.Pinning = ebpf.PinByName
	}
	if err := maps.Size(spec, d.cfg.MaxRules, d.cfg.MaxPrefixes); err != nil {
		return err
	}

	_, statErr := os.Stat(pin)
	switch {
	case statErr == nil:
		d.adopted = true
	case errors.Is(statErr, os.ErrNotExist) && d.cfg.AdoptOnly:
		return fmt.Errorf("no dataplane pinned at %s: %w", pin, ErrNoDataplane)
	case errors.Is(statErr, os.ErrNotExist):
		// Build the pins in a private folder and rename it into place,
		// so a concurrent creator sees all of the dataplane or none.
		// bpffs refuses names with a dot.
		tmp := fmt.Sprintf("%s-new-%d", pin, os.Getpid())
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return fmt.Errorf("create pin folder %s: %w", tmp, err)
		}
		// Maps only: the programs are loaded (and verified) once, below.
		var m bpfobj.ZfwMaps
		if err := spec.LoadAndAssign(&m, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: tmp}}); err != nil {
			os.RemoveAll(tmp)
			return loadError(err)
		}
		m.Close()
		if err := os.Rename(tmp, pin); err != nil {
			os.RemoveAll(tmp)
			if !errors.Is(err, os.ErrExist) && !errors.Is(err, unix.ENOTEMPTY) {
				return fmt.Errorf("move pins into %s: %w", pin, err)
			}
			d.adopted = true // another process won the race
		}
	default:
		return fmt.Errorf("pin folder %s: %w", pin, statErr)
	}

	lock, err := os.Open(pin)
	if err != nil {
		return fmt.Errorf("open pin folder %s: %w", pin, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("dataplane at %s is owned by another process: %w", pin, ErrBusy)
		}
		return fmt.Errorf("lock %s: %w", pin, err)
	}
	d.lock = lock

	if d.adopted {
		if err := keepPinnedSizes(spec, pin); err != nil {
			return err
		}
	}
	if err := spec.LoadAndAssign(&d.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pin}}); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return fmt.Errorf("maps pinned at %s do not match this version's layout (remove the folder to start afresh): %w", pin, err)
		}
		return loadError(err)
	}
	if err := os.MkdirAll(filepath.Join(pin, linksDir), 0o700); err != nil {
		d.objs.Close()
		return fmt.Errorf("create %s: %w", filepath.Join(pin, linksDir), err)
	}
	return nil
}

// keepPinnedSizes sets the capacity of every map in spec that is pinned
// under pin to the pinned map's: an adopted dataplane keeps the sizes it
// was made with, whatever the adopter asks for.
func keepPinnedSizes(spec *ebpf.CollectionSpec, pin string) error {
	for name, ms := range spec.Maps {
		if ms.Pinning != ebpf.PinByName {
			continue
		}
		m, err := ebpf.LoadPinnedMap(filepath.Join(pin, name), &ebpf.LoadPinOptions{ReadOnly: true})
		if errors.Is(err, os.ErrNotExist) {
			continue // made by this load
		}
		if err != nil {
			return fmt.Errorf("pinned map %s: %w", name, err)
		}
		ms.MaxEntries = m.MaxEntries()
		m.Close()
	}
	return nil
}

var (
	// ErrBusy reports a pin folder that another process owns.
	ErrBusy = errors.New("dataplane busy")
	// ErrNoDataplane reports an AdoptOnly Open with nothing pinned.
	ErrNoDataplane = errors.New("no dataplane")
)

func loadError(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		err = fmt.Errorf("verifier rejected the program: %+v", ve)
	}
	return fmt.Errorf("load BPF objects: %w", explainLoad(err, requirements()))
}

// Adopted reports whether Open found a dataplane left by an earlier process.
func (d *Dataplane) Adopted() bool { return d.adopted }

// Maps returns the map set the control plane writes.
func (d *Dataplane) Maps() *maps.Set { return maps.FromObjects(&d.objs.ZfwMaps) }

// Objects exposes the loaded objects (benchmarks and tests run the program).
func (d *Dataplane) Objects() *bpfobj.ZfwObjects { return &d.objs }

// Netlink is the handle bound to the namespace Open ran in.
func (d *Dataplane) Netlink() *netlink.Handle { return d.nl }

// Close releases the objects. With keep, everything attached and pinned
// stays in the kernel for the next process; without, Close detaches what
// this process owns, removes policy routing and deletes the pins.
func (d *Dataplane) Close(keep bool) error {
	var errs []error
	if !keep {
		for name := range d.attach {
			if err := d.Detach(name); err != nil {
				errs = append(errs, err)
			}
		}
		for name := range d.xdp {
			if err := d.DetachTunXDP(name); err != nil {
				errs = append(errs, err)
			}
		}
		if d.routing {
			if err := d.RemoveRouting(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := d.RemoveLocalSources(); err != nil {
			errs = append(errs, err)
		}
	} else {
		for _, a := range d.attach {
			a.release()
		}
		for _, xl := range d.xdp {
			xl.Close()
		}
	}
	if err := d.closeSkLookup(keep); err != nil {
		errs = append(errs, fmt.Errorf("detach sk_lookup: %w", err))
	}
	if err := d.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close objects: %w", err))
	}
	if !keep {
		if err := os.RemoveAll(d.cfg.PinPath); err != nil {
			errs = append(errs, fmt.Errorf("remove pins %s: %w", d.cfg.PinPath, err))
		}
	}
	if d.lock != nil {
		d.lock.Close()
	}
	d.nl.Close()
	d.ns.Close()
	return errors.Join(errs...)
}

// InNetns runs fn on a thread in the dataplane's namespace, as reading
// its /proc/thread-self/net needs.
func (d *Dataplane) InNetns(fn func() error) error { return d.inNetns(fn) }

// inNetns runs fn on a thread in the dataplane's namespace: links are
// created by interface index, which the kernel resolves in the calling
// thread's namespace, and the Firewall's methods may run on any thread.
func (d *Dataplane) inNetns(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer self.Close()
		if self.Equal(d.ns) {
			runtime.UnlockOSThread()
			errc <- fn()
			return
		}
		if err := netns.Set(d.ns); err != nil {
			errc <- fmt.Errorf("enter the dataplane's namespace: %w", err)
			return // the thread stays locked and dies with the goroutine
		}
		err = fn()
		if netns.Set(self) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// ensureBPFFS makes sure the pin folder's parent lives on a bpf
// filesystem, mounting one at /sys/fs/bpf if that is where it should be
// and nothing is there (as under `ip netns exec`, or in a container).
func ensureBPFFS(pin string) error {
	dir := filepath.Dir(filepath.Clean(pin))
	if onBPFFS(dir) {
		return nil
	}
	const root = "/sys/fs/bpf"
	if dir == root || strings.HasPrefix(dir, root+"/") {
		if err := os.MkdirAll(root, 0o755); err == nil {
			if err := unix.Mount("bpffs", root, "bpf", 0, "mode=0700"); err != nil {
				return fmt.Errorf("%s is not on a bpf filesystem and mounting one there failed: %w", dir, err)
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("create %s: %w", dir, err)
			}
			if onBPFFS(dir) {
				return nil
			}
		}
	}
	return fmt.Errorf("pin folder %s is not on a bpf filesystem: mount one (mount -t bpf bpffs /sys/fs/bpf) or choose a PinPath under one", pin)
}

func onBPFFS(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return uint32(st.Type) == unix.BPF_FS_MAGIC
}
