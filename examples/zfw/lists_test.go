package main

import (
	"slices"
	"strings"
	"testing"
)

// -u, -y and -g add to the dataplane's lists and, with -d, take away;
// -L -U, -Y, -C show them; -F -U, -Y, -C empty them.
func TestListsAreChangedShownAndEmptied(t *testing.T) {
	for _, tc := range []struct {
		add, remove []string // command lines
		list, flush string
		want, left  []string // what -L shows after the additions, the removal
		gone        string   // the member removed
	}{
		{
			add:    []string{"-u 443", "-u 80", "--ddos-dport-add=443"},
			remove: []string{"-u 80 -d"},
			list:   "-L -U", flush: "-F -U",
			want: []string{"every port): 2", "80", "443"}, left: []string{"every port): 1", "443"}, gone: "80",
		},
		{
			add:    []string{"-y 192.168.4.4", "-y fd00::4"},
			remove: []string{"-y fd00::4 -d", "-y fd00::4 -d"},
			list:   "-L -Y", flush: "-F -Y",
			want: []string{"allow-list", "192.168.4.4", "fd00::4", "banned now for flooding SYNs: 0"},
			left: []string{"listed): 1", "192.168.4.4"}, gone: "fd00::4",
		},
		{
			add:    []string{"-g 1", "-g 129"},
			remove: []string{"-g 1 -d"},
			list:   "-L -C", flush: "-F -C",
			want: []string{"allowed: 2", "1", "129"}, left: []string{"allowed: 1", "129"}, gone: "1",
		},
	} {
		t.Run(tc.list, func(t *testing.T) {
			p := served(t)
			check := func(when string, want []string) string {
				t.Helper()
				out := p.must(t, tc.list)
				for _, w := range want {
					if !strings.Contains(out, w) {
						t.Errorf("zfw %s %s lacks %q:\n%s", tc.list, when, w, out)
					}
				}
				return out
			}
			for _, line := range tc.add {
				p.must(t, line)
			}
			check("after the additions", tc.want)
			for _, line := range tc.remove {
				p.must(t, line)
			}
			out := check("after the removal", tc.left)
			if slices.Contains(strings.Split(out, "\n"), tc.gone) {
				t.Errorf("zfw %s still shows %s:\n%s", tc.list, tc.gone, out)
			}
			p.must(t, tc.flush)
			if lines := strings.Split(strings.TrimSpace(p.must(t, tc.list)), "\n"); !strings.HasSuffix(lines[0], ": 0") {
				t.Errorf("zfw %s after %s:\n%s", tc.list, tc.flush, strings.Join(lines, "\n"))
			}
		})
	}
}

func TestListValuesAreChecked(t *testing.T) {
	p := served(t)
	for _, tc := range []struct{ line, want string }{
		{"-u 0", `port "0": 1 to 65535`},
		{"-y 10.0.0.0/8", "not an IPv4 or IPv6 address"},
		{"-g 300", "0 to 255"},
	} {
		if code, _, errOut := p.zfwRun(t, tc.line); code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("zfw %s: exit %d, %q; want 1 and %q", tc.line, code, errOut, tc.want)
		}
	}
}
