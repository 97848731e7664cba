package kernels

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kernel is a bootable kernel image and the modules built with it.
type Kernel struct {
	// Release is its uname -r ("6.1.0-57-amd64").
	Release string
	// Package is the Debian package it was unpacked from, if any.
	Package string
	// Image is the bzImage qemu boots.
	Image string
	// ModulesDir is lib/modules/RELEASE; empty if there are none.
	ModulesDir string
}

// DebianMetapackage is the package whose dependency names the current
// stock amd64 kernel of the Debian release apt points at.
const DebianMetapackage = "linux-image-amd64"

// FetchDebianKernel finds the newest stock amd64 kernel apt offers (the
// dependency of DebianMetapackage, preferring its -unsigned twin, which
// holds the same image), downloads it with apt-get download and unpacks it
// with dpkg -x under cacheDir/RELEASE. It never installs the package. A
// kernel already unpacked there is reused.
func FetchDebianKernel(ctx context.Context, cacheDir string) (*Kernel, error) {
	out, err := run(ctx, "", "apt-cache", "depends", DebianMetapackage)
	if err != nil {
		return nil, err
	}
	pkg, err := kernelPackageFromDepends(out)
	if err != nil {
		return nil, fmt.Errorf("kernels: apt-cache depends %s: %w", DebianMetapackage, err)
	}
	release := strings.TrimPrefix(pkg, "linux-image-")
	if _, err := run(ctx, "", "apt-cache", "show", "--no-all-versions", pkg+"-unsigned"); err == nil {
		pkg += "-unsigned"
	}
	dir := filepath.Join(cacheDir, release)
	k := &Kernel{
		Release:    release,
		Package:    pkg,
		Image:      filepath.Join(dir, "root", "boot", "vmlinuz-"+release),
		ModulesDir: filepath.Join(dir, "root", "lib", "modules", release),
	}
	if _, err := os.Stat(k.Image); err == nil {
		return k, nil
	}
	if err := unpackPackage(ctx, pkg, dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(k.Image); err != nil {
		return nil, fmt.Errorf("kernels: %s has no kernel image: %w", pkg, err)
	}
	return k, nil
}

// unpackPackage downloads pkg into dir and unpacks it into dir/root.
func unpackPackage(ctx context.Context, pkg, dir string) error {
	dl := filepath.Join(dir, "download")
	if err := os.RemoveAll(dl); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	// As root, apt-get download would try to drop to the _apt user, who
	// cannot write to dl; it then warns and downloads as root anyway.
	if _, err := run(ctx, dl, "apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", pkg); err != nil {
		return err
	}
	debs, err := filepath.Glob(filepath.Join(dl, "*.deb"))
	if err != nil || len(debs) != 1 {
		return fmt.Errorf("kernels: apt-get download %s: want one .deb in %s, found %v (%v)", pkg, dl, debs, err)
	}
	root, tmp := filepath.Join(dir, "root"), filepath.Join(dir, "root.tmp")
	for _, p := range []string{root, tmp} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("kernels: %w", err)
		}
	}
	if _, err := run(ctx, "", "dpkg", "-x", debs[0], tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, root); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	if err := os.RemoveAll(dl); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kernels: %w", err)
	}
	return nil
}

// kernelPackageFromDepends picks the linux-image-* dependency out of
// `apt-cache depends linux-image-amd64`; with several (alternatives),
// the last one listed, which apt lists newest last.
func kernelPackageFromDepends(out string) (string, error) {
	var pkg string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(strings.TrimLeft(sc.Text(), " |"))
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") &&
			!strings.HasPrefix(f[1], "<") && strings.HasSuffix(f[1], "-amd64") && !strings.Contains(f[1], "cloud") {
			pkg = f[1]
		}
	}
	if pkg == "" {
		return "", errors.New("no linux-image-*-amd64 dependency")
	}
	return pkg, nil
}

// run runs a command in dir and returns its output; errors carry the
// command and its stderr.
func run(ctx context.Context, dir, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kernels: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
