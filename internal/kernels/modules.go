package kernels

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GuestModules are the modules the tests need in a guest kernel where they
// are not built in: nfnetlink and xfrm_user (without them zfw.New's
// netlink calls fail "protocol not supported"), the link types the
// topologies create, and the TC qdisc, classifier and action of the clsact
// fallback.
var GuestModules = []string{
	"nfnetlink", "xfrm_algo", "xfrm_user",
	"veth", "dummy", "tun",
	"sch_ingress", "cls_bpf", "act_bpf",
}

// ModuleTree is the modules of one kernel release: the directory holding
// modules.dep (lib/modules/RELEASE) and what each module depends on.
type ModuleTree struct {
	Dir string
	// files maps a module name (underscores) to its path relative to Dir.
	files map[string]string
	// deps maps a module name to the names it depends on; a module absent
	// here has its dependencies read from its .modinfo on first use.
	deps map[string][]string
	// builtin names modules compiled into the kernel (modules.builtin).
	builtin map[string]bool
}

// moduleName is the name the kernel knows a module file by: its base name
// without the .ko[.xz|.zst|.gz] suffix, dashes as underscores.
func moduleName(file string) string {
	base := filepath.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// OpenModuleTree reads dir's modules.dep when there is one. A kernel
// package unpacked with dpkg -x has none (depmod writes it at install
// time): then the module files are indexed by walking dir and each one's
// dependencies come from its own .modinfo "depends=" field, which is what
// depmod reads too.
func OpenModuleTree(dir string) (*ModuleTree, error) {
	t := &ModuleTree{Dir: dir, files: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	if err := t.readBuiltin(); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	switch {
	case err == nil:
		defer f.Close()
		if err := t.parseDep(f); err != nil {
			return nil, fmt.Errorf("kernels: %s: %w", f.Name(), err)
		}
		return t, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("kernels: %w", err)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.Contains(d.Name(), ".ko") {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			t.files[moduleName(rel)] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernels: index modules in %s: %w", dir, err)
	}
	return t, nil
}

func (t *ModuleTree) readBuiltin() error {
	data, err := os.ReadFile(filepath.Join(t.Dir, "modules.builtin"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	for _, line := range strings.Fields(string(data)) {
		t.builtin[moduleName(line)] = true
	}
	return nil
}

// parseDep reads modules.dep lines: "path: dep-path dep-path…".
func (t *ModuleTree) parseDep(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, rest, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("line %d: no ':' in %q", n, line)
		}
		name := moduleName(file)
		t.files[name] = file
		deps := []string{}
		for _, d := range strings.Fields(rest) {
			deps = append(deps, moduleName(d))
		}
		t.deps[name] = deps
	}
	return sc.Err()
}

// Resolve returns the module files (relative to Dir) to load for names,
// in load order: every module after the modules it depends on, each once.
// A name built into the kernel is left out; a name that is neither a
// module nor built in is an error.
func (t *ModuleTree) Resolve(names []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("kernels: module dependency cycle: %s", strings.Join(append(chain, name), " -> "))
		}
		file, ok := t.files[name]
		if !ok {
			if t.builtin[name] {
				state[name] = 2
				return nil
			}
			if len(chain) > 0 {
				return fmt.Errorf("kernels: module %s (needed by %s) not in %s", name, chain[len(chain)-1], t.Dir)
			}
			return fmt.Errorf("kernels: module %s is neither in %s nor built in", name, t.Dir)
		}
		state[name] = 1
		deps, err := t.depsOf(name, file)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, file)
		return nil
	}
	for _, n := range names {
		if err := visit(moduleName(n), nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func (t *ModuleTree) depsOf(name, file string) ([]string, error) {
	if d, ok := t.deps[name]; ok {
		return d, nil
	}
	data, err := ReadModule(filepath.Join(t.Dir, file))
	if err != nil {
		return nil, err
	}
	d, err := modinfoDepends(data)
	if err != nil {
		return nil, fmt.Errorf("kernels: %s: %w", file, err)
	}
	t.deps[name] = d
	return d, nil
}

// modinfoDepends returns the "depends=" list of a module's .modinfo.
func modinfoDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("read ELF: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo: %w", err)
	}
	deps := []string{}
	for _, kv := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			for _, d := range strings.Split(string(v), ",") {
				if d != "" {
					deps = append(deps, moduleName(d))
				}
			}
		}
	}
	return deps, nil
}

// ReadModule returns a module file's contents, decompressed when it is a
// .ko.xz, .ko.zst or .ko.gz (busybox insmod loads only plain ELF).
func ReadModule(path string) ([]byte, error) {
	var tool []string
	switch {
	case strings.HasSuffix(path, ".ko"):
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("kernels: %w", err)
		}
		return data, nil
	case strings.HasSuffix(path, ".xz"):
		tool = []string{"xz", "-dc", path}
	case strings.HasSuffix(path, ".zst"):
		tool = []string{"zstd", "-dcq", path}
	case strings.HasSuffix(path, ".gz"):
		tool = []string{"gzip", "-dc", path}
	default:
		return nil, fmt.Errorf("kernels: %s: not a kernel module", path)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(tool[0], tool[1:]...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kernels: decompress %s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
