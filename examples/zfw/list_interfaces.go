package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/zfw-go/zfw/examples/internal/listing"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

// writeInterfaces prints `zfw -L -E`: each managed interface and its
// settings, one per line as the C zfw's list-diag does (1 on, 0 off),
// under the C zfw's names for them.
func writeInterfaces(w io.Writer, ifs []zfw.Interface) error {
	if len(ifs) == 0 {
		_, err := fmt.Fprintln(w, "no interface is managed")
		return err
	}
	rule := strings.Repeat("-", 34)
	for _, ifc := range ifs {
		fmt.Fprintf(w, "%s\n%s\n", listing.Printable(ifc.Name), rule)
		// Default deny has no option of its own in the C zfw; the rest are
		// the settings its options change.
		fmt.Fprintf(w, "%-24s:%d\n", "default deny", bit(ifc.DefaultDeny))
		for _, st := range control.States(ifc.InterfaceSettings) {
			fmt.Fprintf(w, "%-24s:%d\n", st.Label, bit(st.On))
		}
		fmt.Fprintln(w, rule)
	}
	return nil
}

func bit(on bool) int {
	if on {
		return 1
	}
	return 0
}
