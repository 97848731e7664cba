package kernels

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// SharedLibraries returns the absolute paths of the shared libraries
// (and the dynamic loader) that bin needs, as ldd reports them; a static
// binary needs none.
func SharedLibraries(ctx context.Context, bin string) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ldd", bin)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// ldd exits 1 on a static binary ("not a dynamic executable").
		if strings.Contains(stderr.String()+string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("kernels: ldd %s: %w: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	libs, err := parseLdd(string(out))
	if err != nil {
		return nil, fmt.Errorf("kernels: ldd %s: %w", bin, err)
	}
	return libs, nil
}

// parseLdd reads ldd's output: "name => /path (addr)", "/path (addr)"
// (the loader) and "linux-vdso.so.1 (addr)" (no file). A library ldd
// could not find is an error.
func parseLdd(out string) ([]string, error) {
	var libs []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.Contains(line, "statically linked") {
			continue
		}
		var p string
		if name, target, ok := strings.Cut(line, "=>"); ok {
			target = strings.TrimSpace(target)
			if strings.HasPrefix(target, "not found") {
				return nil, fmt.Errorf("library %s not found", strings.TrimSpace(name))
			}
			p, _, _ = strings.Cut(target, " ")
		} else {
			p, _, _ = strings.Cut(line, " ")
		}
		if !filepath.IsAbs(p) || seen[p] {
			continue // the vDSO has no file
		}
		seen[p] = true
		libs = append(libs, p)
	}
	return libs, sc.Err()
}
