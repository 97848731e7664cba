// Package docs_test checks that the documentation says what the code
// does: its examples are the code's own.
package docs_test

import (
	"os"
	"strings"
	"testing"
)

// The README's code is package zfw's Example body, so it compiles and
// cannot drift.
func TestREADMEShowsExample(t *testing.T) {
	src, err := os.ReadFile("../../zfw/example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(src), "\nfunc Example() {\n")
	if !ok {
		t.Fatal("example_test.go has no func Example")
	}
	body, _, _ = strings.Cut(body, "\n}\n")
	lines := strings.Split(body, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "\t")
	}
	want := "```go\n" + strings.Join(lines, "\n") + "\n```\n"
	if !strings.Contains(string(readme), want) {
		t.Errorf("README.md lacks Example's body as a go block:\n%s", want)
	}
}
