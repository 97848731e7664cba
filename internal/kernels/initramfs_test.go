package kernels

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

type cpioEntry struct {
	mode uint32
	data string
}

// readCPIO parses a newc archive (the format the kernel unpacks).
func readCPIO(t *testing.T, r io.Reader) map[string]cpioEntry {
	t.Helper()
	all, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]cpioEntry{}
	off := 0
	field := func(i int) int {
		v, err := strconv.ParseUint(string(all[off+6+8*i:off+6+8*i+8]), 16, 32)
		if err != nil {
			t.Fatalf("bad header field %d at %d: %v", i, off, err)
		}
		return int(v)
	}
	for {
		if string(all[off:off+6]) != "070701" {
			t.Fatalf("bad magic at %d", off)
		}
		mode, size, namesize := field(1), field(6), field(11)
		nameStart := off + 110
		name := string(all[nameStart : nameStart+namesize-1])
		dataStart := nameStart + namesize
		dataStart += pad4(dataStart)
		if name == "TRAILER!!!" {
			return out
		}
		if _, dup := out[name]; dup {
			t.Errorf("%s twice in the archive", name)
		}
		out[name] = cpioEntry{uint32(mode), string(all[dataStart : dataStart+size])}
		off = dataStart + size
		off += pad4(off)
	}
}

func TestInitramfs(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string][]byte{
		"busybox":                           []byte("BUSYBOX"),
		"sbin/ip":                           []byte("IP"),
		"lib/x86_64-linux-gnu/libc.so.6":    []byte("LIBC"),
		"mods/kernel/net/xfrm/xfrm_algo.ko": []byte("ALGO"),
		"mods/kernel/net/xfrm/xfrm_user.ko": []byte("USER"),
		"bin/zfw.test":                      []byte("ZFWTEST"),
		"bin/bpfobj.test":                   []byte("BPFOBJTEST"),
	})
	spec := &Initramfs{
		Busybox:      filepath.Join(src, "busybox"),
		Tools:        []string{filepath.Join(src, "sbin/ip")},
		Libraries:    []string{filepath.Join(src, "lib/x86_64-linux-gnu/libc.so.6")},
		ModulesDir:   filepath.Join(src, "mods"),
		Modules:      []string{"kernel/net/xfrm/xfrm_algo.ko", "kernel/net/xfrm/xfrm_user.ko"},
		TestBinaries: map[string]string{"zfw.test": filepath.Join(src, "bin/zfw.test"), "bpfobj.test": filepath.Join(src, "bin/bpfobj.test")},
		Plan:         testPlan,
	}
	dst := filepath.Join(t.TempDir(), "initrd.cpio.gz")
	if err := spec.WriteFile(dst); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got := readCPIO(t, zr)
	want := map[string]struct {
		mode uint32
		data string
	}{
		"bin/busybox": {0o100755, "BUSYBOX"},
		"bin/sh":      {0o120777, "busybox"},
		"sbin/ip":     {0o100755, "IP"},
		strings.TrimPrefix(filepath.Join(src, "lib/x86_64-linux-gnu/libc.so.6"), "/"): {0o100755, "LIBC"},
		"modules/00-xfrm_algo.ko": {0o100644, "ALGO"},
		"modules/01-xfrm_user.ko": {0o100644, "USER"},
		"zfw/zfw.test":            {0o100755, "ZFWTEST"},
		"zfw/bpfobj.test":         {0o100755, "BPFOBJTEST"},
		"proc":                    {0o040755, ""},
		"run":                     {0o040755, ""},
	}
	for name, w := range want {
		e, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if e.mode != w.mode || e.data != w.data {
			t.Errorf("%s: mode %o data %q, want %o %q", name, e.mode, e.data, w.mode, w.data)
		}
	}
	for name := range got {
		if dir := filepath.Dir(name); dir != "." {
			if e, ok := got[dir]; !ok || e.mode&0o170000 != 0o040000 {
				t.Errorf("%s: parent %s is not a directory in the archive", name, dir)
			}
		}
	}
	init, ok := got["init"]
	if !ok || init.mode != 0o100755 {
		t.Fatalf("init missing or not executable: %+v", init)
	}
	for _, s := range []string{
		"insmod /modules/00-xfrm_algo.ko; echo \"@@zfw-kernels insmod=xfrm_algo rc=$?\"",
		"insmod /modules/01-xfrm_user.ko;",
		"export ZFW_REQUIRE_PRIVILEGED=1",
		"mount -t bpf bpf /sys/fs/bpf",
		"mkdir -p /run/netns",
		"'/zfw/bpfobj.test' '-test.v' '-test.count=1' '-test.timeout=1m0s' '-test.run' '.' 2>&1",
		"'-test.run' '^TestEndToEndTCP$'",
		"echo \"@@zfw-kernels step=e2e rc=$rc secs=",
		"echo \"@@zfw-kernels done\"",
		"poweroff -f",
	} {
		if !strings.Contains(init.data, s) {
			t.Errorf("init lacks %q:\n%s", s, init.data)
		}
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(init.data)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("init is not valid sh: %v: %s", err, out)
		}
	}
}

func TestInitramfsMissingBinary(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string][]byte{"busybox": []byte("B")})
	spec := &Initramfs{Busybox: filepath.Join(src, "busybox"), Plan: testPlan}
	dst := filepath.Join(t.TempDir(), "x.cpio.gz")
	err := spec.WriteFile(dst)
	if err == nil || !strings.Contains(err.Error(), "no test binary bpfobj.test") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("a failed build left %s", dst)
	}
}

func TestCPIOPadding(t *testing.T) {
	for n := 0; n < 9; n++ {
		var b bytes.Buffer
		c := newCPIOWriter(&b)
		if err := c.File(strings.Repeat("n", n+1), 0o644, bytes.Repeat([]byte{'x'}, n)); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if b.Len()%4 != 0 {
			t.Errorf("n=%d: archive length %d not a multiple of 4", n, b.Len())
		}
		got := readCPIO(t, &b)
		if e := got[strings.Repeat("n", n+1)]; e.data != strings.Repeat("x", n) {
			t.Errorf("n=%d: read back %q", n, e.data)
		}
	}
}
