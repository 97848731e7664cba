package main

import (
	"slices"
	"strings"
	"testing"
)

// -I adds ingress rules, and with -z egress rules that decide new flows
// leaving; an egress rule does not replace an ingress one of the same
// match, and a listener is refused for it.
func TestInsertAddsRulesOfEitherDirection(t *testing.T) {
	p := served(t)
	for _, line := range []string{
		"-I -c 10.9.0.0 -m 16 -p tcp -l 443 -h 443 -t 0",
		"-I -z egress -c 10.9.0.0 -m 16 -p tcp -l 443 -h 443 -t 0",
		"-I --direction egress -d -c 10.8.0.1 -m 32 -p udp -l 53 -h 53",
		"-I -z egress -c 10.9.0.0 -m 16 -p tcp -l 443 -h 443 -t 0", // again: no change
	} {
		p.must(t, line)
	}
	want := []string{
		"accept ingress - tcp any 10.9.0.0/16 dpts=443:443 PASSTHRU to 10.9.0.0/16 all 0",
		"accept egress - tcp any 10.9.0.0/16 dpts=443:443 ALLOW out to 10.9.0.0/16 all 0",
		"deny egress - udp any 10.8.0.1/32 dpts=53:53 DROP all 0",
	}
	got := rows(p.must(t, "-L"))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("zfw -L:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	code, _, errOut := p.zfwRun(t, "-I -z egress -c 10.9.0.0 -m 16 -p tcp -l 443 -h 443 -t 4000")
	if code != 2 || !strings.Contains(errOut, "only arriving packets are steered to a listener") {
		t.Errorf("an egress rule with a listener: exit %d, %q; want 2 and why", code, errOut)
	}
}
