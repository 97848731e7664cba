package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
	"github.com/zfw-go/zfw/zfw/metrics"
)

// run runs one edge-router command line and returns the exit status:
// 0 success, 1 failure, 2 bad command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		writeUsage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return runRouter(ctx, args[1:], stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		writeUsage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "edge-router: unknown command %q\n", args[0])
	writeUsage(stderr)
	return 2
}

func writeUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  edge-router run --config ebpf_config.json [--rules user_rules.json|.txt] [--pin-path DIR]
                  [--control-socket PATH] [--metrics-addr HOST:PORT] [--log-level LEVEL] [--clean]
  edge-router check --config ebpf_config.json [--rules FILE]

run brings the zfw dataplane up on the config's interfaces, applies the user
rules, serves the control socket for the zfw command and runs until SIGINT or
SIGTERM; it then leaves the dataplane pinned (and working) for its next start,
or removes it with --clean. check validates the config and rules and changes
nothing.
`)
}

// files are the config and rules file flags both commands take.
type files struct{ config, rules string }

func (f *files) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "ebpf_config.json (required)")
	fs.StringVar(&f.rules, "rules", "", "user rules file: .json list of rules, or zfw -I lines")
}

// parseFlags parses args into fs; ok is false after a usage error
// (reported on fs's output) or -h.
func parseFlags(fs *flag.FlagSet, f *files, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "edge-router %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	if f.config == "" {
		fmt.Fprintf(fs.Output(), "edge-router %s: --config is required\n", fs.Name())
		return 2, false
	}
	return 0, true
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	var f files
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	if code, ok := parseFlags(fs, &f, args); !ok {
		return code
	}
	cfg, rules, err := load(f, interfaceExists)
	if err != nil {
		fmt.Fprintf(stderr, "edge-router: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s is valid:\n", f.config)
	writeSummary(stdout, cfg, len(rules))
	return 0
}

// writeSummary prints each interface's settings and the rule count.
func writeSummary(w io.Writer, cfg *Config, rules int) {
	for _, r := range cfg.interfaces() {
		kind := "internal"
		if r.external {
			kind = "external"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", kind, r.Name, settingsString(r.settings()))
	}
	fmt.Fprintf(w, "  %d user rules\n", rules)
}

// settingsString lists the settings that are on, or "-".
func settingsString(s zfw.InterfaceSettings) string {
	var on []string
	for _, f := range []struct {
		name string
		on   bool
	}{
		{"DefaultDeny", s.DefaultDeny}, {"PerInterfaceRules", s.PerInterfaceRules}, {"Masquerade", s.Masquerade},
		{"Verbose", s.Verbose}, {"ICMPEcho", s.ICMPEcho}, {"DisableSSH", s.DisableSSH}, {"VRRP", s.VRRP},
		{"EAPOL", s.EAPOL}, {"PassNonTuple", s.PassNonTuple}, {"DisableIPv6", s.DisableIPv6},
		{"OutboundFilter", s.OutboundFilter}, {"DDoSProtection", s.DDoSProtection}, {"OTFiltering", s.OTFiltering},
	} {
		if f.on {
			on = append(on, f.name)
		}
	}
	if len(on) == 0 {
		return "-"
	}
	return strings.Join(on, " ")
}

// interfaceExists reports an interface missing from this network
// namespace.
func interfaceExists(name string) error {
	if _, err := net.InterfaceByName(name); err != nil {
		return fmt.Errorf("interface %s not found", name)
	}
	return nil
}

// load reads and validates the config and the rules file as a whole.
func load(f files, lookup func(string) error) (*Config, []UserRule, error) {
	data, err := os.ReadFile(f.config)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := ParseConfig(data)
	if err == nil {
		err = cfg.Validate(lookup)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("config %s:\n%w", f.config, indent(err))
	}
	if f.rules == "" {
		return cfg, nil, nil
	}
	data, err = os.ReadFile(f.rules)
	if err != nil {
		return nil, nil, err
	}
	rules, err := ParseRules(f.rules, data)
	if err == nil {
		err = checkRules(cfg, rules)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("rules %s:\n%w", f.rules, indent(err))
	}
	return cfg, rules, nil
}

// indent puts each line of err's message on its own indented line.
func indent(err error) error {
	return errors.New("  " + strings.ReplaceAll(err.Error(), "\n", "\n  "))
}

// router is what runRouter runs.
type router struct {
	cfg         *Config
	rules       []UserRule
	pinPath     string
	socket      string
	metricsAddr string
	clean       bool
	log         logrus.FieldLogger
}

func runRouter(ctx context.Context, args []string, stderr io.Writer) int {
	var (
		f        files
		r        router
		logLevel string
	)
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	fs.StringVar(&r.pinPath, "pin-path", zfw.DefaultPinPath, "bpf filesystem folder of the pinned dataplane")
	fs.StringVar(&r.socket, "control-socket", "", "control socket for the zfw command (default /run/zfw/<pin folder name>.sock)")
	fs.StringVar(&r.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address at /metrics (default off)")
	fs.StringVar(&logLevel, "log-level", "info", "panic, fatal, error, warn, info, debug or trace")
	fs.BoolVar(&r.clean, "clean", false, "on exit remove the dataplane (detach, unpin) instead of keeping it for the next start")
	if code, ok := parseFlags(fs, &f, args); !ok {
		return code
	}
	level, err := logrus.ParseLevel(logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "edge-router run: --log-level: %v\n", err)
		return 2
	}
	if r.socket == "" {
		r.socket = control.SocketPath(r.pinPath)
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(level)
	r.log = log

	if r.cfg, r.rules, err = load(f, interfaceExists); err != nil {
		log.Errorf("%v", err)
		return 1
	}
	if err := r.run(ctx); err != nil {
		log.Errorf("%v", err)
		return 1
	}
	return 0
}

// run brings the dataplane up and serves it until ctx ends.
func (r *router) run(ctx context.Context) (err error) {
	fw, err := zfw.New(zfw.Options{
		Interfaces:  r.cfg.Interfaces(),
		PinPath:     r.pinPath,
		KeepOnClose: !r.clean,
		SYNFlood:    r.cfg.SYNFlood(),
		Logger:      r.log,
	})
	if err != nil {
		return fmt.Errorf("start the dataplane at %s: %w", r.pinPath, err)
	}
	defer func() {
		if cerr := fw.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the dataplane: %w", cerr)
		}
		switch {
		case r.clean:
			r.log.WithField("pin", r.pinPath).Info("dataplane removed")
		default:
			r.log.WithField("pin", r.pinPath).Info("dataplane kept: it goes on filtering until the next start adopts it")
		}
	}()
	u := fw.Usage()
	r.log.WithFields(logrus.Fields{"pin": r.pinPath, "adopted": u.AdoptedDataplane, "rules": u.Rules}).Info("dataplane up")
	for _, ifc := range fw.Interfaces() {
		r.log.WithField("interface", ifc.Name).Infof("attached: %s", settingsString(ifc.InterfaceSettings))
	}
	if err := r.configure(ctx, fw); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	var (
		wg   sync.WaitGroup
		once sync.Once
		fail error
	)
	// stop ends the run on the first failure of a server.
	stop := func(err error) {
		if err != nil {
			once.Do(func() { fail = err })
		}
		cancel()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()

	srv, err := control.Listen(r.socket, fw, control.ServerOptions{Logger: r.log})
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	wg.Go(func() {
		if err := srv.Serve(ctx); err != nil {
			stop(fmt.Errorf("control socket: %w", err))
		}
	})
	r.log.WithField("socket", srv.Path()).Info("serving the control socket")

	if r.metricsAddr != "" {
		ln, err := net.Listen("tcp", r.metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(metrics.NewCollector(fw))
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				stop(fmt.Errorf("metrics: %w", err))
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, done := context.WithTimeout(context.Background(), 5*time.Second)
			defer done()
			hs.Shutdown(sctx)
		})
		r.log.WithField("addr", ln.Addr().String()).Info("serving metrics at /metrics")
	}

	if r.anyVerbose() {
		events, err := fw.Events(ctx)
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		wg.Go(func() {
			for e := range events {
				r.log.WithField("event", e.Kind.String()).Info(e.String())
			}
		})
	}

	r.log.Info("edge-router running")
	<-ctx.Done()
	r.log.Info("edge-router stopping")
	cancel()
	wg.Wait()
	return fail
}

// configure applies the DDoS and OT sections and the user rules.
func (r *router) configure(ctx context.Context, fw *zfw.Firewall) error {
	if d := r.cfg.DDoS; d != nil && len(d.ProtectedPorts) > 0 {
		ports := make([]uint16, len(d.ProtectedPorts))
		for i, p := range d.ProtectedPorts {
			ports[i] = uint16(p)
		}
		if err := fw.DDoS().ProtectPorts(ctx, ports...); err != nil {
			return fmt.Errorf("DDoS.ProtectedPorts: %w", err)
		}
	}
	if o := r.cfg.OT; o != nil && len(o.DNP3FunctionCodes) > 0 {
		codes := make([]uint8, len(o.DNP3FunctionCodes))
		for i, c := range o.DNP3FunctionCodes {
			codes[i] = uint8(c)
		}
		if err := fw.OT().AllowDNP3(ctx, codes...); err != nil {
			return fmt.Errorf("OT.DNP3FunctionCodes: %w", err)
		}
	}
	return applyRules(ctx, fw, r.rules, r.log)
}

func (r *router) anyVerbose() bool {
	for _, ifc := range r.cfg.Interfaces() {
		if ifc.Verbose {
			return true
		}
	}
	return false
}
