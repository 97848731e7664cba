package ziti

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRequiredVersionFindsTheRequireDirective(t *testing.T) {
	tests := []struct {
		name    string
		gomod   string
		want    string
		wantErr bool
	}{
		{
			name:  "single line",
			gomod: "module m\n\nrequire github.com/openziti/ziti v1.2.3\n",
			want:  "v1.2.3",
		},
		{
			name: "block with indirect comment",
			gomod: "module m\n\nrequire (\n\tgithub.com/a/b v0.1.0\n" +
				"\tgithub.com/openziti/ziti v1.6.5 // indirect\n)\n",
			want: "v1.6.5",
		},
		{
			name: "replace lines are not requires",
			gomod: "module m\n\nreplace github.com/openziti/ziti => github.com/openziti/ziti v9.9.9\n" +
				"replace (\n\tgithub.com/openziti/ziti => ../ziti\n)\n" +
				"require github.com/openziti/ziti v1.0.0\n",
			want: "v1.0.0",
		},
		{
			name:    "similar module path",
			gomod:   "module m\n\nrequire (\n\tgithub.com/openziti/ziti-extra v1.0.0\n)\n",
			wantErr: true,
		},
		{
			name:    "commented out",
			gomod:   "module m\n\n// require github.com/openziti/ziti v1.0.0\n",
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requiredVersion([]byte(tt.gomod), zitiModule)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("requiredVersion = %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("requiredVersion = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCommittedBuilderModuleIsResolved(t *testing.T) {
	b, err := newBuilder(BinaryOptions{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(b.moduleDir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	version, err := requiredVersion(gomod, zitiModule)
	if err != nil {
		t.Fatal(err)
	}
	gosum, err := os.ReadFile(filepath.Join(b.moduleDir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	// A go.sum with the module's own hash was made by go mod tidy for this
	// version, so the build needs no resolution.
	if line := zitiModule + " " + version + " h1:"; !bytes.Contains(gosum, []byte(line)) {
		t.Errorf("builder go.sum has no %q line: run go mod tidy in %s", line, b.moduleDir)
	}
}

func TestDefaultCacheDirPrefersTheEnvironment(t *testing.T) {
	errNoHome := errors.New("no home")
	tests := []struct {
		name    string
		env     map[string]string
		userDir string
		userErr error
		want    string
		wantErr bool
	}{
		{name: "ZFW_ZITI_CACHE wins", env: map[string]string{CacheEnv: "/c"}, userDir: "/u", want: "/c"},
		{name: "user cache dir", userDir: "/u/.cache", want: "/u/.cache/zfw"},
		{name: "no user cache dir", userErr: errNoHome, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := defaultCacheDir(
				func(k string) string { return tt.env[k] },
				func() (string, error) { return tt.userDir, tt.userErr })
			if tt.wantErr {
				if !errors.Is(err, errNoHome) {
					t.Fatalf("defaultCacheDir = %q, %v; want error wrapping %v", got, err, errNoHome)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("defaultCacheDir = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestBinaryReturnsTheBinaryFromTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "ziti")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr bool
	}{
		{name: "executable", path: exe},
		{name: "not executable", path: plain, wantErr: true},
		{name: "missing", path: filepath.Join(dir, "missing"), wantErr: true},
		{name: "directory", path: dir, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(BinEnv, tt.path)
			// A builder directory that does not exist proves nothing is built.
			got, err := Binary(t.Context(), BinaryOptions{CacheDir: t.TempDir(), BuilderDir: filepath.Join(dir, "none")})
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), BinEnv) {
					t.Fatalf("Binary = %q, %v; want an error naming %s", got, err, BinEnv)
				}
				return
			}
			if err != nil || got != tt.path {
				t.Errorf("Binary = %q, %v; want %q", got, err, tt.path)
			}
		})
	}
}

// fakeModule writes a builder module requiring ziti at version.
func fakeModule(t *testing.T, version, sum string) string {
	t.Helper()
	dir := t.TempDir()
	gomod := "module fake\n\nrequire " + zitiModule + " " + version + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), []byte(sum), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// countingBuild is a build function that writes a script and counts calls.
type countingBuild struct {
	calls atomic.Int32
	fail  error
}

func (c *countingBuild) build(_ context.Context, dir, out string) error {
	c.calls.Add(1)
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); err != nil {
		return err
	}
	if c.fail != nil {
		return c.fail
	}
	return os.WriteFile(out, []byte("#!/bin/sh\necho built\n"), 0o755)
}

func newTestBuilder(t *testing.T, moduleDir, cacheDir string, build *countingBuild) *builder {
	t.Helper()
	b, err := newBuilder(BinaryOptions{CacheDir: cacheDir, BuilderDir: moduleDir})
	if err != nil {
		t.Fatal(err)
	}
	b.build = build.build
	return b
}

func TestBinaryBuildsOnceForConcurrentCallers(t *testing.T) {
	module := fakeModule(t, "v1.2.3", "sum\n")
	cache := t.TempDir()
	build := &countingBuild{}

	const callers = 8
	paths := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			// Separate builders share only the cache directory, as separate
			// test processes do.
			paths[i], errs[i] = newTestBuilder(t, module, cache, build).binary(t.Context())
		})
	}
	wg.Wait()

	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if paths[i] != paths[0] {
			t.Errorf("caller %d got %q, caller 0 got %q", i, paths[i], paths[0])
		}
	}
	if got := build.calls.Load(); got != 1 {
		t.Errorf("built %d times, want 1", got)
	}
	if err := checkExecutable(paths[0]); err != nil {
		t.Error(err)
	}
	if !strings.Contains(filepath.Base(paths[0]), "v1.2.3") {
		t.Errorf("cached binary %q does not name the version", paths[0])
	}
	leftovers, err := filepath.Glob(filepath.Join(cache, "build-*"))
	if err != nil || len(leftovers) != 0 {
		t.Errorf("build directories left in the cache: %v %v", leftovers, err)
	}
}

func TestBinaryRebuildsWhenTheBuilderModuleChanges(t *testing.T) {
	cache := t.TempDir()
	build := &countingBuild{}
	first, err := newTestBuilder(t, fakeModule(t, "v1.2.3", "one\n"), cache, build).binary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	again, err := newTestBuilder(t, fakeModule(t, "v1.2.3", "one\n"), cache, build).binary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if again != first || build.calls.Load() != 1 {
		t.Fatalf("same module: got %q after %d builds, want the cached %q", again, build.calls.Load(), first)
	}
	changed, err := newTestBuilder(t, fakeModule(t, "v1.2.3", "two\n"), cache, build).binary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if changed == first || build.calls.Load() != 2 {
		t.Errorf("changed go.sum: got %q after %d builds, want a new binary", changed, build.calls.Load())
	}
}

func TestBinaryCachesNothingWhenTheBuildFails(t *testing.T) {
	module := fakeModule(t, "v1.2.3", "sum\n")
	cache := t.TempDir()
	failing := &countingBuild{fail: errors.New("compiler exploded")}
	if path, err := newTestBuilder(t, module, cache, failing).binary(t.Context()); !errors.Is(err, failing.fail) {
		t.Fatalf("binary = %q, %v; want the build error", path, err)
	}
	working := &countingBuild{}
	if _, err := newTestBuilder(t, module, cache, working).binary(t.Context()); err != nil {
		t.Fatal(err)
	}
	if working.calls.Load() != 1 {
		t.Errorf("after a failed build the next call built %d times, want 1", working.calls.Load())
	}
}

func TestBinaryStopsWaitingForTheLockWhenCancelled(t *testing.T) {
	module := fakeModule(t, "v1.2.3", "sum\n")
	cache := t.TempDir()
	b := newTestBuilder(t, module, cache, &countingBuild{})
	gomod, _ := os.ReadFile(filepath.Join(module, "go.mod"))
	gosum, _ := os.ReadFile(filepath.Join(module, "go.sum"))
	lock := filepath.Join(cache, "ziti-v1.2.3-"+moduleKey(gomod, gosum)+".lock")
	unlock, err := lockFile(t.Context(), lock)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.binary(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("binary with the lock held and a cancelled context: %v, want %v", err, context.Canceled)
	}
}

func TestBinaryWithNoBuildFailsUnlessCached(t *testing.T) {
	module := fakeModule(t, "v1.2.3", "sum\n")
	cache := t.TempDir()
	build := &countingBuild{}
	noBuild := newTestBuilder(t, module, cache, build)
	noBuild.noBuild = true
	if path, err := noBuild.binary(t.Context()); !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("uncached, NoBuild: binary = %q, %v; want ErrNotBuilt", path, err)
	}
	if build.calls.Load() != 0 {
		t.Fatalf("NoBuild built %d times", build.calls.Load())
	}
	built, err := newTestBuilder(t, module, cache, build).binary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if path, err := noBuild.binary(t.Context()); err != nil || path != built {
		t.Errorf("cached, NoBuild: binary = %q, %v; want %q", path, err, built)
	}
}
