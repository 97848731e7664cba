// Command zfw changes the rules of a running zfw dataplane, flag for flag
// like the C zfw where OpenZiti's tunneler and router run it as their
// diverter (`ziti tunnel tproxy --diverter`, router `mode: tproxy:<path>`):
//
//	zfw -V
//	zfw -I -c 10.0.0.0 -m 24 -p tcp -o 0.0.0.0 -n 0 -l 80 -h 80 -t 34567 -s <service id> [-N eth0]
//	zfw -D -c 10.0.0.0 -m 24 -p tcp -o 0.0.0.0 -n 0 -l 80 -h 80 [-N eth0]
//	zfw -I -z egress -c 10.0.0.0 -m 24 -p tcp -l 443 -h 443 -t 0|-d
//	zfw -L [-i|-f] [-z ingress|egress]
//	zfw -L -E
//	zfw -F [-z ingress|egress]
//	zfw -e|-v|-x|-P|-T|-R|-w|-a|-b|-k|-6|-q|-S <ifname|all> [-d]
//	zfw -L -Y|-U|-C, zfw -F -Y|-U|-C
//	zfw -y <source>|-u <port>|-g <function code> [-d]
//	zfw -X <ifname|all> -z ingress|egress [-d] [-O file], zfw -H <ifname|all>, zfw -Z <tun> [-d]
//	zfw -M <ifname|all> [-W file]
//	zfw -Q
//
// Each -I adds one rule: destination prefix, source prefix, protocol and
// port range, steered to the listener 127.0.0.1:<-t> (or [::1]) and
// tagged with the service id; -t 0 passes matching packets to the host
// and -d drops them. Inserting a rule that exists changes nothing;
// inserting one with the same match but another listener or service
// replaces it, and one naming another interface (-N) extends it to that
// interface too. With -z egress the rule decides new flows leaving an
// interface whose outbound filter (-b) is on: it passes (-t 0) or drops
// (-d) them. -D removes the rule with that match (from that
// interface only, with -N); a rule that is not there is an error. -F
// removes every rule added this way; intercepts that the owning process
// registered stay.
//
// The dataplane belongs to a long-running process (examples/edge-router,
// or a tunneler built on package zfw) that pinned it under
// /sys/fs/bpf/zfw (or $ZFW_PIN_PATH, --pin-path). zfw first asks that
// process through its control socket, /run/zfw/<pin folder name>.sock
// ($ZFW_CONTROL_SOCKET, --control-socket). If nothing answers there and
// no process holds the dataplane (its owner stopped with KeepOnClose),
// zfw opens the pinned maps itself, changes the rules and leaves
// everything in place for the owner's return. If nothing is pinned, -I
// starts the dataplane itself, with no interface attached, keeps it and
// says so on stderr: OpenZiti's router may insert its rules before the
// owner starts, and the owner adopts them rather than losing them (they
// steer nothing until it attaches an interface). -L, -D and -F fail
// there and say to start the owner first.
//
// Exit status: 0 on success, 1 when the operation fails, 2 for a bad
// command line.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
