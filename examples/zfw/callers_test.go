package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// callersTable is the section of the operators' guide that lists every
// command line OpenZiti's programs exec against the diverter.
const callersTable = "## What OpenZiti's programs run"

// callerLine is one row of that table.
type callerLine struct {
	caller, line string
	exit         int
}

// callerLines reads the table's rows, in order.
func callerLines(t *testing.T) []callerLine {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operators.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), callersTable)
	if !ok {
		t.Fatalf("docs/operators.md has no %q section", callersTable)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var out []callerLine
	for _, row := range strings.Split(section, "\n") {
		cells := strings.Split(row, " | ")
		if len(cells) < 4 || !strings.HasPrefix(cells[1], "`zfw ") {
			continue
		}
		exit, err := strconv.Atoi(cells[2])
		if err != nil {
			t.Fatalf("row %q: exit %q", row, cells[2])
		}
		out = append(out, callerLine{
			caller: strings.TrimPrefix(cells[0], "| "),
			line:   strings.TrimSuffix(strings.TrimPrefix(cells[1], "`zfw "), "`"),
			exit:   exit,
		})
	}
	return out
}

// Every command line of the operators' guide's table of OpenZiti's
// callers, run in its order against one running owner, exits as the
// table says (IF is an interface the owner can attach).
func TestEveryCallersCommandLineFromTheOperatorsTable(t *testing.T) {
	lines := callerLines(t)
	if len(lines) < 30 {
		t.Fatalf("the table has %d command lines; is it still the table of every caller?", len(lines))
	}
	p, ns, fw := ownedNamespace(t)
	t.Setenv(envUserRules, filepath.Join(t.TempDir(), "no-user-rules.sh"))
	for i, l := range lines {
		line := strings.ReplaceAll(l.line, "IF", "zfwa0")
		var code int
		var out, errOut string
		// In the owner's namespace, as the callers run beside it.
		ns.Do(func() error {
			code, out, errOut = p.zfwRun(t, line)
			return nil
		})
		if code != l.exit {
			t.Errorf("row %d (%s): zfw %s: exit %d, want %d\nstdout: %s\nstderr: %s", i+1, l.caller, line, code, l.exit, out, errOut)
		}
	}
	// The last rows stop ziti-edge-tunnel: nothing is attached and no
	// rule added with -I is left.
	if ifs := fw.Interfaces(); len(ifs) != 0 {
		t.Errorf("after the table, the owner manages %+v", ifs)
	}
	if n := fw.Usage().Rules; n != 0 {
		t.Errorf("after the table, %d rules are left", n)
	}
}
