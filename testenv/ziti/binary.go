package ziti

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

const (
	// BinEnv names the environment variable that points at an existing ziti
	// executable; when set, Binary returns it and builds nothing.
	BinEnv = "ZFW_ZITI_BIN"
	// CacheEnv names the environment variable that overrides the directory
	// where Binary keeps built executables.
	CacheEnv = "ZFW_ZITI_CACHE"

	// zitiModule is the module whose ziti command the builder module builds.
	zitiModule = "github.com/openziti/ziti"
	// zitiPackage is the main package of the ziti command.
	zitiPackage = zitiModule + "/ziti"
	// builderDirName is the directory, next to this file, of the builder module.
	builderDirName = "zitibuild"
	// lockPoll is how often a waiting caller retries the build lock.
	lockPoll = 200 * time.Millisecond
)

// BinaryOptions tune Binary. The zero value builds from the builder module
// in the source tree into the default cache directory.
type BinaryOptions struct {
	// CacheDir holds built executables. Empty means $ZFW_ZITI_CACHE, else
	// the user cache directory ($XDG_CACHE_HOME or ~/.cache) plus "zfw".
	CacheDir string
	// BuilderDir is the directory of the builder module (go.mod and go.sum).
	// Empty means testenv/ziti/zitibuild in the source tree of this package.
	BuilderDir string
	// Logger reports builds; nil discards.
	Logger logrus.FieldLogger
	// NoBuild makes Binary fail with an error wrapping ErrNotBuilt
	// instead of building a missing executable, for callers that must
	// not spend minutes on a build (`make ziti` builds it).
	NoBuild bool
}

// ErrNotBuilt is wrapped by Binary's error when the executable is not in
// the cache and BinaryOptions.NoBuild forbids building it.
var ErrNotBuilt = errors.New("ziti executable not built")

// Binary returns the path of a ziti executable. When $ZFW_ZITI_BIN is set it
// must name an executable file and is returned as is. Otherwise the ziti
// version required by the builder module is built with the go command (a
// few minutes the first time) and cached under a name made of the version
// and a hash of the builder's go.mod and go.sum, so a changed builder module
// builds again. A file lock makes concurrent callers, in this or other
// processes, build it only once.
func Binary(ctx context.Context, opts BinaryOptions) (string, error) {
	if path := os.Getenv(BinEnv); path != "" {
		if err := checkExecutable(path); err != nil {
			return "", fmt.Errorf("ziti binary from %s: %w", BinEnv, err)
		}
		return path, nil
	}
	b, err := newBuilder(opts)
	if err != nil {
		return "", err
	}
	return b.binary(ctx)
}

// builder builds the ziti executable from a builder module into a cache.
type builder struct {
	moduleDir string
	cacheDir  string
	noBuild   bool
	log       logrus.FieldLogger
	// build compiles the ziti command of the module in dir into out.
	build func(ctx context.Context, dir, out string) error
}

func newBuilder(opts BinaryOptions) (*builder, error) {
	b := &builder{moduleDir: opts.BuilderDir, cacheDir: opts.CacheDir, noBuild: opts.NoBuild, log: opts.Logger}
	if b.log == nil {
		discard := logrus.New()
		discard.SetOutput(io.Discard)
		b.log = discard
	}
	if b.moduleDir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return nil, errors.New("locate ziti builder module: no caller information")
		}
		b.moduleDir = filepath.Join(filepath.Dir(file), builderDirName)
	}
	if b.cacheDir == "" {
		dir, err := defaultCacheDir(os.Getenv, os.UserCacheDir)
		if err != nil {
			return nil, err
		}
		b.cacheDir = dir
	}
	b.build = goBuild
	return b, nil
}

// defaultCacheDir resolves the cache directory from $ZFW_ZITI_CACHE or the
// user cache directory.
func defaultCacheDir(getenv func(string) string, userCacheDir func() (string, error)) (string, error) {
	if dir := getenv(CacheEnv); dir != "" {
		return dir, nil
	}
	dir, err := userCacheDir()
	if err != nil {
		return "", fmt.Errorf("ziti binary cache: %w (set %s)", err, CacheEnv)
	}
	return filepath.Join(dir, "zfw"), nil
}

// binary returns the cached executable, building it first when missing.
func (b *builder) binary(ctx context.Context) (string, error) {
	gomod, err := os.ReadFile(filepath.Join(b.moduleDir, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("ziti builder module: %w", err)
	}
	gosum, err := os.ReadFile(filepath.Join(b.moduleDir, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("ziti builder module: %w", err)
	}
	version, err := requiredVersion(gomod, zitiModule)
	if err != nil {
		return "", fmt.Errorf("ziti builder module %s: %w", b.moduleDir, err)
	}
	path := filepath.Join(b.cacheDir, "ziti-"+version+"-"+moduleKey(gomod, gosum))
	if checkExecutable(path) == nil {
		return path, nil
	}
	if b.noBuild {
		return "", fmt.Errorf("%w: no %s", ErrNotBuilt, path)
	}

	if err := os.MkdirAll(b.cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("ziti binary cache: %w", err)
	}
	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another process may have built it while this one waited.
	if checkExecutable(path) == nil {
		return path, nil
	}

	work, err := os.MkdirTemp(b.cacheDir, "build-")
	if err != nil {
		return "", fmt.Errorf("ziti build directory: %w", err)
	}
	defer os.RemoveAll(work)
	// Build in a copy, so the go command never rewrites the committed files.
	mod := filepath.Join(work, "module")
	if err := os.Mkdir(mod, 0o755); err != nil {
		return "", fmt.Errorf("ziti build directory: %w", err)
	}
	for name, data := range map[string][]byte{"go.mod": gomod, "go.sum": gosum} {
		if err := os.WriteFile(filepath.Join(mod, name), data, 0o644); err != nil {
			return "", fmt.Errorf("ziti build directory: %w", err)
		}
	}

	out := filepath.Join(work, "ziti")
	start := time.Now()
	b.log.WithFields(logrus.Fields{"version": version, "path": path}).Info("building ziti (takes a few minutes)")
	if err := b.build(ctx, mod, out); err != nil {
		return "", fmt.Errorf("build ziti %s: %w", version, err)
	}
	if err := os.Rename(out, path); err != nil {
		return "", fmt.Errorf("cache ziti binary: %w", err)
	}
	b.log.WithFields(logrus.Fields{"path": path, "took": time.Since(start).Round(time.Second)}).Info("built ziti")
	return path, nil
}

// goBuild runs the go command to build the ziti command of the module in dir.
func goBuild(ctx context.Context, dir, out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build ziti: %w", err)
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, zitiPackage)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GONOSUMDB=github.com/openziti",
		"GOFLAGS=-mod=mod",
		"GOWORK=off",
	)
	output, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, bytes.TrimSpace(output))
	}
	return nil
}

// requiredVersion returns the version of module that a go.mod requires,
// from either a single-line or a block require directive.
func requiredVersion(gomod []byte, module string) (string, error) {
	inRequire := false
	scanner := bufio.NewScanner(bytes.NewReader(gomod))
	for scanner.Scan() {
		line := scanner.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case inRequire && fields[0] == ")":
			inRequire = false
			continue
		case fields[0] == "require" && len(fields) == 2 && fields[1] == "(":
			inRequire = true
			continue
		case fields[0] == "require":
			fields = fields[1:]
		case !inRequire:
			continue
		}
		if len(fields) == 2 && fields[0] == module {
			return fields[1], nil
		}
	}
	if err := scanner.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("go.mod does not require %s", module)
}

// moduleKey identifies the contents of a builder module.
func moduleKey(gomod, gosum []byte) string {
	h := sha256.New()
	for _, data := range [][]byte{gomod, gosum} {
		fmt.Fprintf(h, "%d\n", len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// checkExecutable reports why path is not an executable regular file.
func checkExecutable(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if info.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

// lockFile takes an exclusive flock on path, creating it, and waits for it
// until ctx ends. The returned function releases the lock.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	ticker := time.NewTicker(lockPoll)
	defer ticker.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("build lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for build lock %s: %w", path, ctx.Err())
		case <-ticker.C:
		}
	}
}
