package main

import (
	"os"
	"strings"
	"testing"
)

// The C zfw's bind-address operations succeed with a reason and need no
// dataplane: none is running here, and none is created.
func TestBindAddressesNeedNothing(t *testing.T) {
	p := newPlace(t)
	for _, line := range []string{"-B 10.5.0.0 -m 24", "-J 10.5.0.0 -m 24", "-F -j"} {
		code, out, errOut := p.zfwRun(t, line)
		if code != 0 || out != "" || !strings.Contains(errOut, "IP_TRANSPARENT") {
			t.Errorf("zfw %s: exit %d, stdout %q, stderr %q; want 0 and the reason", line, code, out, errOut)
		}
	}
	if _, err := os.Stat(p.pin); !os.IsNotExist(err) {
		t.Errorf("a bind operation created the dataplane at %s (%v)", p.pin, err)
	}
}
