// Command edge-router is zfw's router mode: it owns the eBPF dataplane of
// an OpenZiti edge router, in the spirit of the C zfw's
// start_ebpf_router.py and its ebpf_config.json.
//
//	edge-router run --config ebpf_config.json [--rules user_rules.json|.txt]
//	    [--pin-path /sys/fs/bpf/zfw] [--control-socket /run/zfw/zfw.sock]
//	    [--metrics-addr 127.0.0.1:9402] [--log-level info] [--clean]
//	edge-router check --config ebpf_config.json [--rules user_rules.txt]
//
// run validates the whole config and rules file first (see Config,
// InterfaceConfig and ParseRules for the formats and the mapping onto
// zfw.InterfaceSettings), then starts the dataplane on the config's
// interfaces with zfw.Options.KeepOnClose, so that a restart adopts the
// running dataplane and its rules and no connection notices. It applies
// the user rules (a rule already there with the same match and effect is
// left alone), serves the control socket through which the zfw command
// (examples/zfw) changes rules — as OpenZiti's `ziti router` does when
// its tunnel listener runs in mode tproxy:<path to zfw> — optionally
// serves Prometheus metrics, and logs the events of Verbose interfaces.
//
// On SIGINT or SIGTERM it closes the control socket and the metrics
// server and stops, leaving the dataplane attached and pinned: it keeps
// filtering, tracking and translating until the next run adopts it.
// With --clean it removes the dataplane instead (detaches the programs,
// removes the policy routing and the pins), and every rule with it.
//
// check does the same validation without changing anything in the
// kernel: it only reads the interface list, and checks the rules on an
// in-memory dataplane.
//
// Exit status: 0 success, 1 failure, 2 bad command line.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
