package main

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// machine identifies where and on what a run happened.
type machine struct {
	date, host, kernel, cpu, goVersion, commit string
	cores                                      int
}

func describeMachine() machine {
	m := machine{
		date:      time.Now().UTC().Format(time.RFC3339),
		host:      "unknown",
		kernel:    "unknown",
		cpu:       "unknown",
		goVersion: runtime.Version(),
		commit:    "unknown",
		cores:     runtime.NumCPU(),
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		m.kernel = unix.ByteSliceToString(uts.Release[:]) + " " + unix.ByteSliceToString(uts.Machine[:])
	}
	if h, err := os.Hostname(); err == nil {
		m.host = h
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
			m.commit += " (with uncommitted changes)"
		}
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				m.cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	return m
}
