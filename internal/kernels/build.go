package kernels

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildTestBinaries builds each binary plan needs with
// `CGO_ENABLED=0 go test -c` (static, so it runs in a bare initramfs) from
// the module at repoDir into outDir, and returns name -> path.
func BuildTestBinaries(ctx context.Context, goTool, repoDir, outDir string, plan []Step) (map[string]string, error) {
	bins, err := planBinaries(plan)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("kernels: %w", err)
	}
	out := map[string]string{}
	for name, pkg := range bins {
		dst, err := filepath.Abs(filepath.Join(outDir, name))
		if err != nil {
			return nil, fmt.Errorf("kernels: %w", err)
		}
		cmd := exec.CommandContext(ctx, goTool, "test", "-c", "-o", dst, pkg)
		cmd.Dir = repoDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("kernels: go test -c %s: %w: %s", pkg, err, strings.TrimSpace(string(b)))
		}
		out[name] = dst
	}
	return out, nil
}
