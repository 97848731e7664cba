package main

import (
	"slices"
	"strings"
	"testing"
)

// -D removes the rule of its direction only: -z egress the egress rule,
// without -z the ingress one of the same match.
func TestDeleteRemovesTheRuleOfItsDirection(t *testing.T) {
	const match = "-c 10.9.0.0 -m 16 -p tcp -l 443 -h 443"
	for _, tc := range []struct {
		del  string
		left string // the direction of the rule left
	}{
		{"-D " + match, "egress"},
		{"-D -z ingress " + match, "egress"},
		{"-D -z egress " + match, "ingress"},
	} {
		t.Run(tc.del, func(t *testing.T) {
			p := served(t)
			p.must(t, "-I -t 0 "+match)
			p.must(t, "-I -z egress -t 0 "+match)
			p.must(t, tc.del)
			got := rows(p.must(t, "-L"))
			if len(got) != 1 || strings.Fields(got[0])[1] != tc.left {
				t.Errorf("after zfw %s: %q, want the %s rule only", tc.del, got, tc.left)
			}
			// The rule is gone: deleting it again changes nothing, and
			// succeeds, as the C zfw's does.
			code, _, errOut := p.zfwRun(t, tc.del)
			if code != 0 || !strings.Contains(errOut, "nothing to delete") {
				t.Errorf("zfw %s again: exit %d, %q", tc.del, code, errOut)
			}
			if again := rows(p.must(t, "-L")); !slices.Equal(again, got) {
				t.Errorf("the second -D changed the rules: %q", again)
			}
		})
	}
}
