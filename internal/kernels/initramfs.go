package kernels

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
)

// Initramfs says what goes into a guest's initramfs.
type Initramfs struct {
	// Busybox is a static busybox; /init runs under it and installs its
	// applets at boot.
	Busybox string
	// Tools are host binaries copied to /sbin (iproute2's ip and tc: the
	// tests exec `ip netns exec`, which busybox lacks).
	Tools []string
	// Libraries are absolute paths of the shared libraries Tools need,
	// copied to the same paths in the guest.
	Libraries []string
	// ModulesDir and Modules: module files relative to ModulesDir, in
	// load order (decompressed into the image).
	ModulesDir string
	Modules    []string
	// TestBinaries maps a step's Binary name to the file built for it.
	TestBinaries map[string]string
	// Plan is the steps /init runs.
	Plan []Step
}

// WriteFile writes the gzip-compressed newc initramfs to dst.
func (s *Initramfs) WriteFile(dst string) (err error) {
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("kernels: initramfs: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("kernels: initramfs: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		return fmt.Errorf("kernels: initramfs: %w", err)
	}
	if err := s.write(newCPIOWriter(zw)); err != nil {
		return fmt.Errorf("kernels: initramfs %s: %w", dst, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("kernels: initramfs: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("kernels: initramfs: %w", err)
	}
	return nil
}

func (s *Initramfs) write(c *cpioWriter) error {
	if s.Busybox == "" {
		return errors.New("no busybox")
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "sbin", "usr/bin", "usr/sbin"} {
		if err := c.Dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := copyInto(c, s.Busybox, "bin/busybox", 0o755); err != nil {
		return err
	}
	if err := c.Symlink("bin/sh", "busybox"); err != nil {
		return err
	}
	for _, t := range s.Tools {
		if err := copyInto(c, t, path.Join("sbin", filepath.Base(t)), 0o755); err != nil {
			return err
		}
	}
	for _, l := range s.Libraries {
		if !filepath.IsAbs(l) {
			return fmt.Errorf("library %s: not an absolute path", l)
		}
		if err := copyInto(c, l, l, 0o755); err != nil {
			return err
		}
	}
	for i, m := range s.Modules {
		data, err := ReadModule(filepath.Join(s.ModulesDir, m))
		if err != nil {
			return err
		}
		if err := c.File(guestModulePath(i, m), 0o644, data); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(s.TestBinaries))
	for n := range s.TestBinaries {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := copyInto(c, s.TestBinaries[n], path.Join(guestBinDir, n), 0o755); err != nil {
			return err
		}
	}
	for _, st := range s.Plan {
		if _, ok := s.TestBinaries[st.Binary]; !ok {
			return fmt.Errorf("step %s: no test binary %s", st.Name, st.Binary)
		}
	}
	if err := c.File("init", 0o755, []byte(initScript(s.Modules, s.Plan))); err != nil {
		return err
	}
	return c.Close()
}

// copyInto adds the host file src (symlinks followed) at dst.
func copyInto(c *cpioWriter, src, dst string, mode uint32) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return c.File(dst, mode, data)
}
