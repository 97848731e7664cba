// Command ziti-tunnel is an OpenZiti tunneler on zfw's eBPF dataplane: it
// intercepts the services an identity may dial, as their intercept.v1
// configs say, and carries their connections over Ziti, with no iptables
// rule and no per-service route.
//
//	ziti-tunnel run --identity client.json --interface eth0 [--interface eth1 ...]
//	                [--dns 127.0.0.1:53] [--dns-range 100.64.0.0/10]
//	                [--pin-path /sys/fs/bpf/zfw] [--refresh 15s] [--udp-idle 5m]
//	                [--log-level info]
//
// It loads the identity, attaches the dataplane to the interfaces, starts a
// DNS server that gives intercepted hostnames and wildcards addresses from
// the DNS range, and opens one TCP and one UDP TPROXY listener per service,
// on one loopback port. Every intercepted connection or UDP flow is dialed
// to its service with the AppData OpenZiti's hosting tunnelers read
// (dst_protocol, dst_ip, dst_port, dst_hostname, source_addr). It also
// hosts the services the identity may bind, as their host.v1 or host.v2
// configs say, from the client's own address where allowedSourceAddresses
// permit it. On SIGINT or SIGTERM it unregisters every service, stops
// hosting, detaches and exits.
//
// It needs root (CAP_NET_ADMIN and CAP_BPF) and an enrolled identity.
//
// Exit status: 0 after a signal, 1 when it cannot start, 2 for a bad
// command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/intercept/dns"
	"github.com/zfw-go/zfw/zfw"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage is a bad command line, already explained.
var errUsage = errors.New("usage")

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, level, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "ziti-tunnel: %v\n", err)
		}
		return 2
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(level)
	// sdk-golang logs through logrus's standard logger.
	logrus.SetLevel(level)
	cfg.Logger = log
	t, err := newTunneler(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "ziti-tunnel: %v\n", err)
		return 2
	}
	if err := t.Run(ctx); err != nil {
		log.WithError(err).Error("ziti-tunnel failed")
		return 1
	}
	return 0
}

// listFlag is a flag that may be repeated; each value may also be a
// comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parseArgs reads `run` and its flags.
func parseArgs(args []string, stderr io.Writer) (config, logrus.Level, error) {
	fs := flag.NewFlagSet("ziti-tunnel run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      config
		ifaces   listFlag
		dnsRange = dns.DefaultRange.String()
		level    = "info"
	)
	fs.StringVar(&cfg.Identity, "identity", "", "enrolled identity `file` (required)")
	fs.Var(&ifaces, "interface", "interface whose incoming traffic is intercepted (repeat or comma-separate; at least one)")
	fs.StringVar(&cfg.DNSAddr, "dns", dns.DefaultAddr, "`address` the DNS server listens on; empty for none (hostname intercepts are then skipped)")
	fs.StringVar(&dnsRange, "dns-range", dnsRange, "`prefix` intercepted hostnames get addresses from")
	fs.StringVar(&cfg.PinPath, "pin-path", zfw.DefaultPinPath, "pin `folder` of the dataplane, on a bpf filesystem")
	fs.DurationVar(&cfg.RefreshInterval, "refresh", defaultRefreshInterval, "how often to poll the controller for service changes (at least 1s)")
	fs.DurationVar(&cfg.UDPIdleTimeout, "udp-idle", defaultUDPIdleTimeout, "end a UDP flow idle for this long")
	fs.StringVar(&level, "log-level", level, "log `level`: trace, debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ziti-tunnel run --identity FILE --interface IF [flags]\n")
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "run" {
		fs.Usage()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return config{}, 0, flag.ErrHelp
		}
		return config{}, 0, errUsage
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, 0, err
		}
		return config{}, 0, errUsage
	}
	if fs.NArg() > 0 {
		return config{}, 0, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if cfg.Identity == "" {
		return config{}, 0, errors.New("--identity is required")
	}
	if len(ifaces) == 0 {
		return config{}, 0, errors.New("--interface is required")
	}
	cfg.Interfaces = ifaces
	prefix, err := netip.ParsePrefix(dnsRange)
	if err != nil {
		return config{}, 0, fmt.Errorf("--dns-range: %w", err)
	}
	cfg.DNSRange = prefix.Masked()
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return config{}, 0, fmt.Errorf("--log-level: %w", err)
	}
	return cfg, lvl, nil
}
