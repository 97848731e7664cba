// Package control lets other processes change the rules of a running
// Firewall: the process that owns the dataplane serves a unix socket
// (Listen, Serve), and the zfw command, which OpenZiti routers and
// tunnelers run once per rule as their "diverter", talks to it with a
// Client.
//
// The operations are those of the C zfw's rule options, one rule at a
// time: Insert (-I) adds a rule or makes an existing one with the same
// match equal to it, Delete (-D) removes the rule with a match, List
// (-L) and Flush (-F). A Controller runs them either through a socket
// (Client) or directly on a Firewall (Local), with the same semantics.
//
// The protocol is newline-delimited JSON over a stream socket, one
// response per request, each carrying ProtocolVersion. The socket is
// made mode 0600 in a mode 0700 folder, and the server also refuses
// peers whose user is neither root nor its own.
package control
