package ziti

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/testenv"
)

// fakeZiti writes a shell script that stands in for ziti: it appends its
// arguments to calls and then runs body.
func fakeZiti(t *testing.T, body string) (bin, calls string) {
	t.Helper()
	dir := t.TempDir()
	bin, calls = filepath.Join(dir, "ziti"), filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$*\" >> " + calls + "\n" + body + "\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, calls
}

// quickstartCalls counts the quickstart runs recorded in calls.
func quickstartCalls(t *testing.T, calls string) int {
	t.Helper()
	data, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "edge quickstart")
}

func TestStartFailsWithTheLogWhenQuickstartExits(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantRuns  int
		wantInErr string
	}{
		{
			name:      "exits with an error",
			body:      `case "$*" in *quickstart*) echo "the controller exploded"; exit 3;; esac; exit 1`,
			wantRuns:  1,
			wantInErr: "the controller exploded",
		},
		{
			name:      "loses a port race every time",
			body:      `case "$*" in *quickstart*) echo "listen tcp 0.0.0.0:1: bind: address already in use"; exit 1;; esac; exit 1`,
			wantRuns:  startAttempts,
			wantInErr: "address already in use",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin, calls := fakeZiti(t, tt.body)
			parent := t.TempDir()
			n, err := Start(t.Context(), Options{Binary: bin, Dir: parent, StartTimeout: time.Minute})
			if err == nil {
				n.Close()
				t.Fatal("Start succeeded with a quickstart that exits")
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantInErr)
			}
			if got := quickstartCalls(t, calls); got != tt.wantRuns {
				t.Errorf("quickstart ran %d times, want %d", got, tt.wantRuns)
			}
			// Only the logs stay, and the error names them.
			logs, _ := filepath.Glob(filepath.Join(parent, "*", "logs", "quickstart.log"))
			if len(logs) != tt.wantRuns {
				t.Fatalf("kept logs %v, want %d", logs, tt.wantRuns)
			}
			named := false
			for _, log := range logs {
				named = named || strings.Contains(err.Error(), log)
			}
			if !named {
				t.Errorf("error %q names none of the kept logs %v", err, logs)
			}
			others, _ := filepath.Glob(filepath.Join(parent, "*", "quickstart"))
			if len(others) != 0 {
				t.Errorf("quickstart homes left behind: %v", others)
			}
		})
	}
}

func TestStartGivesUpAtTheTimeout(t *testing.T) {
	// A quickstart that never gets ready, and a CLI that never logs in.
	bin, _ := fakeZiti(t, `case "$*" in *quickstart*) exec sleep 600;; esac; exit 1`)
	parent := t.TempDir()
	n, err := Start(t.Context(), Options{Binary: bin, Dir: parent, StartTimeout: 2 * time.Second})
	if err == nil {
		n.Close()
		t.Fatal("Start succeeded with a quickstart that never gets ready")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap %v", err, context.DeadlineExceeded)
	}
}

func TestCloseStopsProcessesAndRemovesFiles(t *testing.T) {
	testenv.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("starts a real OpenZiti network")
	}
	n, err := Start(t.Context(), Options{Logger: testenv.Logger(t, logrus.InfoLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	id, err := n.CreateIdentity(t.Context(), "idle-host")
	if err != nil {
		t.Fatal(err)
	}
	host, err := n.Host(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]int{"quickstart": n.qs.cmd.Process.Pid, "tunnel host": host.proc.cmd.Process.Pid}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for name, pgid := range groups {
		if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s process group %d after Close: %v, want %v", name, pgid, err, syscall.ESRCH)
		}
	}
	if _, err := os.Stat(n.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("network directory after Close: %v, want it gone", err)
	}
	for _, addr := range []string{n.ControllerAddr(), n.RouterAddr()} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", addr)
		}
	}
	if _, err := n.Host(t.Context(), id); err == nil {
		t.Error("Host on a closed network succeeded")
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
