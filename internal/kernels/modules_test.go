package kernels

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeKO is the smallest ELF64 file with a .modinfo section holding
// info (NUL-separated key=value strings), as a kernel module has.
func fakeKO(info ...string) []byte {
	modinfo := []byte(strings.Join(info, "\x00") + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modinfoOff := uint64(ehsize)
	shstrOff := modinfoOff + uint64(len(modinfo))
	shoff := shstrOff + uint64(len(shstrtab))
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, uint16(1))  // e_type: ET_REL
	binary.Write(&b, le, uint16(62)) // e_machine: x86-64
	binary.Write(&b, le, uint32(1))  // e_version
	binary.Write(&b, le, uint64(0))  // e_entry
	binary.Write(&b, le, uint64(0))  // e_phoff
	binary.Write(&b, le, shoff)      // e_shoff
	binary.Write(&b, le, uint32(0))  // e_flags
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(0)) // e_phentsize
	binary.Write(&b, le, uint16(0)) // e_phnum
	binary.Write(&b, le, uint16(shentsize))
	binary.Write(&b, le, uint16(3)) // e_shnum
	binary.Write(&b, le, uint16(2)) // e_shstrndx
	b.Write(modinfo)
	b.Write(shstrtab)
	sh := func(name, typ uint32, off, size uint64) {
		binary.Write(&b, le, name)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, uint64(0)) // flags
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint32(0)) // link
		binary.Write(&b, le, uint32(0)) // info
		binary.Write(&b, le, uint64(1)) // addralign
		binary.Write(&b, le, uint64(0)) // entsize
	}
	sh(0, 0, 0, 0)
	sh(1, 1, modinfoOff, uint64(len(modinfo))) // .modinfo, SHT_PROGBITS
	sh(10, 3, shstrOff, uint64(len(shstrtab))) // .shstrtab, SHT_STRTAB
	return b.Bytes()
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestModinfoDepends(t *testing.T) {
	cases := []struct {
		info []string
		want []string
	}{
		{[]string{"license=GPL", "depends=xfrm_algo", "name=xfrm_user"}, []string{"xfrm_algo"}},
		{[]string{"depends=", "name=veth"}, []string{}},
		{[]string{"depends=a,b-c", "name=x"}, []string{"a", "b_c"}},
	}
	for _, c := range cases {
		got, err := modinfoDepends(fakeKO(c.info...))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: depends %q, want %q", c.info, got, c.want)
		}
	}
	if _, err := modinfoDepends([]byte("not elf")); err == nil {
		t.Error("no error for a file that is not ELF")
	}
}

func TestResolve(t *testing.T) {
	// A tree with modules.dep, as an installed kernel has.
	withDep := t.TempDir()
	writeFiles(t, withDep, map[string][]byte{
		"modules.dep": []byte(strings.Join([]string{
			"kernel/net/xfrm/xfrm_user.ko: kernel/net/xfrm/xfrm_algo.ko",
			"kernel/net/xfrm/xfrm_algo.ko:",
			"kernel/net/sched/act_bpf.ko:",
			"kernel/drivers/net/veth.ko:",
			"kernel/a.ko: kernel/b.ko",
			"kernel/b.ko: kernel/a.ko",
			"kernel/needs-gone.ko: kernel/gone.ko",
		}, "\n") + "\n"),
		"modules.builtin": []byte("kernel/net/sched/sch_ingress.ko\n"),
	})
	// A tree unpacked from a .deb: no modules.dep, dependencies from each
	// module's .modinfo; file names with dashes.
	noDep := t.TempDir()
	writeFiles(t, noDep, map[string][]byte{
		"kernel/net/xfrm/xfrm_user.ko":  fakeKO("depends=xfrm_algo", "name=xfrm_user"),
		"kernel/net/xfrm/xfrm_algo.ko":  fakeKO("depends=", "name=xfrm_algo"),
		"kernel/drivers/net/veth.ko":    fakeKO("depends=", "name=veth"),
		"kernel/net/sched/act_bpf.ko":   fakeKO("depends=", "name=act_bpf"),
		"kernel/net/sched/sch-test.ko":  fakeKO("depends=veth", "name=sch_test"),
		"kernel/net/netfilter/bogus.ko": []byte("garbage"),
	})
	cases := []struct {
		name    string
		dir     string
		modules []string
		want    []string
		err     string
	}{
		{
			name: "dependencies first, each once", dir: withDep,
			modules: []string{"veth", "xfrm_user", "xfrm_algo", "act_bpf"},
			want:    []string{"kernel/drivers/net/veth.ko", "kernel/net/xfrm/xfrm_algo.ko", "kernel/net/xfrm/xfrm_user.ko", "kernel/net/sched/act_bpf.ko"},
		},
		{name: "built-in modules are left out", dir: withDep, modules: []string{"sch_ingress", "veth"}, want: []string{"kernel/drivers/net/veth.ko"}},
		{name: "unknown module", dir: withDep, modules: []string{"tun"}, err: "module tun is neither in"},
		{name: "missing dependency", dir: withDep, modules: []string{"needs_gone"}, err: "module gone (needed by needs_gone)"},
		{name: "cycle", dir: withDep, modules: []string{"a"}, err: "cycle: a -> b -> a"},
		{
			name: "from .modinfo", dir: noDep,
			modules: []string{"xfrm_user", "sch_test", "act_bpf"},
			want:    []string{"kernel/net/xfrm/xfrm_algo.ko", "kernel/net/xfrm/xfrm_user.ko", "kernel/drivers/net/veth.ko", "kernel/net/sched/sch-test.ko", "kernel/net/sched/act_bpf.ko"},
		},
		{name: "unreadable .modinfo", dir: noDep, modules: []string{"bogus"}, err: "bogus.ko: read ELF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tree, err := OpenModuleTree(c.dir)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tree.Resolve(c.modules)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/net/sched/cls_bpf.ko":  "cls_bpf",
		"kernel/net/sched/sch-x.ko.xz": "sch_x",
		"/lib/modules/6.1/veth.ko.zst": "veth",
		"nf-netlink":                   "nf_netlink",
	} {
		if got := moduleName(in); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
}
