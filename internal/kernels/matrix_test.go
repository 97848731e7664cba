package kernels

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lockupTranscript is a guest whose kernel locked up in its second step.
var lockupTranscript = passingTranscript[:strings.Index(passingTranscript, "    e2e_test.go:61")] +
	"[  212.062889] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [zfw.test:197]\r\n" +
	"[  212.062950] RIP: 0010:native_queued_spin_lock_slowpath+0x5c/0x2d0\r\n" +
	"[  212.063000] Kernel panic - not syncing: softlockup: hung tasks\r\n"

// fakeQEMU writes a script that stands in for qemu: boot number i (from
// 1) prints transcripts[i-1] as the guest's console.
func fakeQEMU(t *testing.T, transcripts ...string) QEMU {
	t.Helper()
	dir := t.TempDir()
	var script strings.Builder
	script.WriteString("#!/bin/sh\nn=$(cat " + dir + "/count 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > " + dir + "/count\n")
	for i, tr := range transcripts {
		f := filepath.Join(dir, "boot"+string(rune('1'+i)))
		if err := os.WriteFile(f, []byte(tr), 0o644); err != nil {
			t.Fatal(err)
		}
		script.WriteString("[ $n = " + string(rune('1'+i)) + " ] && exec cat " + f + "\n")
	}
	script.WriteString("exit 3\n")
	bin := filepath.Join(dir, "qemu")
	if err := os.WriteFile(bin, []byte(script.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return QEMU{Binary: bin, Timeout: time.Minute}
}

func TestBootGuestBootsOnceMoreOnlyWhenTheKernelFailed(t *testing.T) {
	failedTest := strings.Replace(passingTranscript, "--- PASS: TestObjectsLoad", "--- FAIL: TestObjectsLoad", 1)
	cases := []struct {
		name        string
		transcripts []string
		pass        bool
		secondBoot  bool
		summary     string // a part of the row's summary
	}{
		{"a pass boots once", []string{passingTranscript}, true, false, "PASS 2 tests"},
		{"a failed test boots once", []string{failedTest, passingTranscript}, false, false, "load: failed TestObjectsLoad"},
		{"a lockup then a pass", []string{lockupTranscript, passingTranscript}, true, true,
			"booted twice: the first boot's kernel failed: watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [zfw.test:197] (in TestEndToEndTCP)"},
		{"a lockup twice fails", []string{lockupTranscript, lockupTranscript}, false, true, "kernel: Kernel panic - not syncing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			cfg := Config{CacheDir: t.TempDir(), Plan: testPlan, QEMU: fakeQEMU(t, c.transcripts...), Out: &out}
			if err := os.MkdirAll(filepath.Join(cfg.CacheDir, "logs"), 0o755); err != nil {
				t.Fatal(err)
			}
			k := &Kernel{Release: "6.1.0-57-amd64"}
			r := &Result{Label: k.Release, Mode: "qemu", Kernel: k.Release, Log: cfg.logPath(k.Release)}
			r = cfg.bootGuest(context.Background(), k, "initrd", r)
			if r.Pass != c.pass {
				t.Errorf("Pass = %v, want %v (%s)", r.Pass, c.pass, r.Error)
			}
			if got := r.FirstBoot != nil; got != c.secondBoot {
				t.Errorf("booted twice = %v, want %v", got, c.secondBoot)
			}
			if s := r.Summary(); !strings.Contains(s, c.summary) {
				t.Errorf("summary %q lacks %q", s, c.summary)
			}
			if c.secondBoot {
				if !strings.Contains(out.String(), "native_queued_spin_lock_slowpath") {
					t.Errorf("the kernel's report was not printed:\n%s", out.String())
				}
				if _, err := os.Stat(r.FirstBoot.Log); err != nil {
					t.Errorf("first boot's log: %v", err)
				}
			}
		})
	}
}
