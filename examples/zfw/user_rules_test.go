package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/testenv"
)

// envRunAsZfw makes the test binary the zfw command (TestMain), so that
// a script a test runs can call zfw.
const envRunAsZfw = "ZFW_TEST_RUN_AS_ZFW"

func TestMain(m *testing.M) {
	if os.Getenv(envRunAsZfw) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	// Then the leak check: no namespace, pin, link or goroutine left.
	os.Exit(testenv.Main(m))
}

// -A runs the user rules script, whose zfw calls reach the same
// dataplane; its failure is -A's, and no script is no error.
func TestUserRulesRunTheScriptAgainstTheSameDataplane(t *testing.T) {
	p := served(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "user_rules.sh")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(script, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envRunAsZfw, "1")
	t.Setenv("ZFW", self)
	t.Setenv(envUserRules, script)

	write(`"$ZFW" -I -c 10.9.0.0 -m 24 -p tcp -l 22 -h 22 -t 0` + "\n")
	if code, _, errOut := p.zfwRun(t, "-A"); code != 0 {
		t.Fatalf("-A: exit %d: %s", code, errOut)
	}
	if out := p.must(t, "-L"); !strings.Contains(out, "10.9.0.0/24") {
		t.Errorf("the script's rule is not in the dataplane:\n%s", out)
	}

	write("exit 3\n")
	if code, _, errOut := p.zfwRun(t, "-A"); code != 1 || !strings.Contains(errOut, "exit status 3") {
		t.Errorf("-A of a failing script: exit %d, %q; want 1 and the script's status", code, errOut)
	}

	t.Setenv(envUserRules, filepath.Join(dir, "none.sh"))
	if code, _, errOut := p.zfwRun(t, "-A"); code != 0 || !strings.Contains(errOut, "nothing to add") {
		t.Errorf("-A without a script: exit %d, %q; want 0 and a note", code, errOut)
	}
}
