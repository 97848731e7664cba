package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/zfw-go/zfw/examples/internal/listing"
	"github.com/zfw-go/zfw/zfw/conntrack"
)

// writeSessions prints `zfw -L -G`: every tracked session, a line each.
// The C zfw's -G also collects expired ones; here the owner collects
// them by itself, and they show as expired until it does.
func writeSessions(w io.Writer, sessions []conntrack.Session) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "direction\tproto\tinterface\tclient\tserver\tstate\tidle\t")
	for _, s := range sessions {
		state := s.State
		if s.Expired {
			state += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Direction, s.Protocol, listing.Printable(s.Interface),
			s.Client, s.Server, state, s.Idle.Round(time.Second))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "sessions: %d\n", len(sessions))
	return err
}
