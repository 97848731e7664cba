package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/intercept"
	zitiintercept "github.com/zfw-go/zfw/intercept/ziti"
	"github.com/zfw-go/zfw/internal/bench"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

// zitiResults are the figures issue 5 (OpenZiti integration) asks for.
type zitiResults struct {
	// cliCalls `zfw -I` runs per round, cliRounds rounds; cliExec is the
	// rate through the examples/zfw binary, one process per call,
	// cliInProcess the same inserts through a control.Client in this
	// process (dial, insert, hang up).
	cliCalls, cliRounds   int
	cliExec, cliInProcess bench.Spread

	// services registered through intercept/ziti per round, regRounds
	// rounds, each on a fresh Interceptor.
	services, regRounds int
	register            bench.Timing

	created createResults
}

func zitiIntegration(ctx context.Context, cfg config) (zitiResults, error) {
	res := zitiResults{cliCalls: cfg.zitiCLICalls, cliRounds: cfg.zitiCLIRounds, services: cfg.zitiServices, regRounds: cfg.zitiRegRounds}
	work, err := os.MkdirTemp("", "zfwbench-ziti-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)
	cfg.log.Info("OpenZiti: zfw -I through the CLI")
	if res.cliExec, res.cliInProcess, err = cliInserts(ctx, cfg, work); err != nil {
		return res, fmt.Errorf("zfw -I: %w", err)
	}
	cfg.log.Infof("OpenZiti: registering %d services", cfg.zitiServices)
	if res.register, err = registerServices(ctx, cfg); err != nil {
		return res, fmt.Errorf("registering %d services: %w", cfg.zitiServices, err)
	}
	cfg.log.Info("OpenZiti: service creation to first intercepted connection")
	if res.created, err = createToConnect(ctx, cfg, work); err != nil {
		return res, fmt.Errorf("service creation to first intercepted connection: %w", err)
	}
	return res, nil
}

// goBuild builds the main package pkg into dir and returns the
// executable's path.
func goBuild(ctx context.Context, dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(string(b)))
	}
	return out, nil
}

// inNamespace runs fn in a fresh namespace, deleted afterwards: a
// dataplane installs policy routing where it is created.
func inNamespace(fn func() error) error {
	ns, err := testenv.NewNamespace(benchName())
	if err != nil {
		return err
	}
	defer ns.Close()
	return ns.Do(fn)
}

// insertRule is `zfw -I` number i: a TCP rule of its own (4,000
// addresses, then the next port on each), as a router inserts one per
// address, protocol and port range of a service.
func insertRule(i int) control.Rule {
	a, port := i%4000, uint16(1+i/4000)
	return control.Rule{
		Match: control.Match{
			Destination: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(a / 256), byte(a % 256)}), 32),
			Protocol:    intercept.TCP,
			Ports:       intercept.PortRange{Low: port, High: port},
		},
		TProxyPort: 38123,
		ServiceID:  "zfwbench",
	}
}

// insertArgs is insertRule(i) as the zfw command's arguments.
func insertArgs(i int) []string {
	r := insertRule(i)
	d := r.Destination
	return []string{"-I", "-c", d.Addr().String(), "-m", fmt.Sprint(d.Bits()), "-p", "tcp", "-o", "0.0.0.0", "-n", "0",
		"-l", fmt.Sprint(r.Ports.Low), "-h", fmt.Sprint(r.Ports.High), "-t", fmt.Sprint(r.TProxyPort), "-s", r.ServiceID}
}

// cliInserts measures `zfw -I` against a running owner: the examples/zfw
// binary run once per rule, and the same inserts made in this process
// through the control socket. Every call adds a new rule; at the end the
// owner must hold them all.
func cliInserts(ctx context.Context, cfg config, work string) (viaExec, inProcess bench.Spread, err error) {
	bin, err := goBuild(ctx, work, "github.com/zfw-go/zfw/examples/zfw")
	if err != nil {
		return viaExec, inProcess, err
	}
	total := 2 * cfg.zitiCLICalls * cfg.zitiCLIRounds
	pin := benchPin()
	defer os.RemoveAll(pin)
	socket := filepath.Join(work, "zfw.sock")
	err = inNamespace(func() error {
		fw, err := zfw.New(zfw.Options{PinPath: pin, MaxRules: total + 1024, MaxPrefixes: 4096, Logger: cfg.log})
		if err != nil {
			return err
		}
		defer fw.Close()
		srv, err := control.Listen(socket, fw, control.ServerOptions{Logger: cfg.log})
		if err != nil {
			return err
		}
		serveCtx, stop := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(serveCtx) }()
		defer func() {
			stop()
			<-served
		}()

		next := 0
		var execRates, localRates []float64
		for round := range cfg.zitiCLIRounds {
			start := time.Now()
			for range cfg.zitiCLICalls {
				cmd := exec.CommandContext(ctx, bin, insertArgs(next)...)
				cmd.Env = append(os.Environ(), "ZFW_PIN_PATH="+pin, "ZFW_CONTROL_SOCKET="+socket)
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("round %d: zfw %s: %w: %s", round, strings.Join(cmd.Args[1:], " "), err, strings.TrimSpace(string(out)))
				}
				next++
			}
			execRates = append(execRates, float64(cfg.zitiCLICalls)/time.Since(start).Seconds())

			start = time.Now()
			for range cfg.zitiCLICalls {
				if err := insertOnce(ctx, socket, insertRule(next)); err != nil {
					return fmt.Errorf("round %d: in process: %w", round, err)
				}
				next++
			}
			localRates = append(localRates, float64(cfg.zitiCLICalls)/time.Since(start).Seconds())
		}
		if got := len(fw.Rules().List()); got != next {
			return fmt.Errorf("the owner holds %d rules after %d inserts of new rules", got, next)
		}
		viaExec, inProcess = bench.SummarizeRates(execRates), bench.SummarizeRates(localRates)
		return nil
	})
	return viaExec, inProcess, err
}

// insertOnce does what one zfw -I run does once started: dial the owner,
// insert, hang up.
func insertOnce(ctx context.Context, socket string, r control.Rule) error {
	c, err := control.Dial(ctx, socket)
	if err != nil {
		return err
	}
	_, err = c.Insert(ctx, r)
	return errors.Join(err, c.Close())
}

// registerServices times an Interceptor of package intercept/ziti taking
// cfg.zitiServices services, one Update each, into a kernel dataplane,
// over rounds, each with a fresh Interceptor closed afterwards (which
// unregisters everything). Listeners open no socket (bench.PortCounter).
func registerServices(ctx context.Context, cfg config) (bench.Timing, error) {
	services, err := bench.ZitiServices(cfg.zitiServices)
	if err != nil {
		return bench.Timing{}, err
	}
	pin := benchPin()
	defer os.RemoveAll(pin)
	var samples []time.Duration
	err = inNamespace(func() error {
		fw, err := zfw.New(zfw.Options{PinPath: pin, Logger: cfg.log})
		if err != nil {
			return err
		}
		defer fw.Close()
		for round := range cfg.zitiRegRounds {
			ic, err := zitiintercept.New(zitiintercept.Options{Registrar: fw, Listeners: &bench.PortCounter{}, Logger: warnOnly(cfg.log)})
			if err != nil {
				return err
			}
			start := time.Now()
			for _, svc := range services {
				if err = ic.Update(ctx, svc); err != nil {
					err = fmt.Errorf("round %d: service %s: %w", round, *svc.ID, err)
					break
				}
			}
			d := time.Since(start)
			if err == nil {
				if got, got2 := len(ic.Services()), len(fw.Intercepts()); got != len(services) || got2 != len(services) {
					err = fmt.Errorf("round %d: %d services intercepted, %d intercepts in the dataplane, want %d", round, got, got2, len(services))
				}
			}
			if cerr := ic.Close(ctx); err == nil && cerr != nil {
				err = fmt.Errorf("round %d: close: %w", round, cerr)
			}
			if err != nil {
				return err
			}
			if n := len(fw.Intercepts()); n != 0 {
				return fmt.Errorf("round %d: %d intercepts left after the Interceptor closed", round, n)
			}
			samples = append(samples, d)
		}
		return nil
	})
	return bench.Summarize(samples), err
}

func writeZiti(b *bytes.Buffer, res zitiResults) {
	c := res.created
	fmt.Fprintf(b, "## OpenZiti integration (issue 5)\n\n")
	fmt.Fprintf(b, "### Service creation to first intercepted connection\n\n")
	refresh := fmt.Sprintf("`--refresh %s`, its default: the service refresh interval a user gets", c.refresh)
	if c.refresh != c.defaultRefresh {
		refresh = fmt.Sprintf("`--refresh %s`; its default is %s", c.refresh, c.defaultRefresh)
	}
	fmt.Fprintf(b, "A real OpenZiti network (the controller and edge router of `ziti edge quickstart` on 127.0.0.1, from `testenv/ziti`) and the `examples/ziti-tunnel` binary, run as a process in the router namespace (%s), attached to the router's client-facing interface. "+
		"For each of %d services, one at a time: its intercept.v1 config (one TCP address and port) is created, a random pause of up to one refresh interval puts the creation at a random point of the tunneler's refresh cycle, the clock starts, `ziti edge create service` creates it with role attributes that existing Dial (the tunneler's identity) and Bind policies select, and the client namespace starts a connection to the intercepted address every %s until one gets the hosting side's answer (attempts overlap: one the tunneler holds while the service has no host yet delays no other). "+
		"The hosting side is an sdk-golang listener in the benchmark process that binds the service as soon as the controller has it, so the figure is the tunneler's: its next service refresh, the Interceptor and the dataplane. Median [min–max].\n\n",
		refresh, c.services, pollEvery)
	fmt.Fprintf(b, "| tunneler refresh interval | services | creation to first intercepted connection | of which the create call |\n|---|---|---|---|\n")
	fmt.Fprintf(b, "| %s | %d | %s | %s |\n\n", c.refresh, c.services, dur(c.toConnect), dur(c.createCall))
	fmt.Fprintf(b, "The tunneler learns of a new service by polling: this controller (v1.6.5) and sdk-golang v1.5.0 push no service changes to SDKs, so a creation waits for the tunneler's next refresh, half an interval on average and a whole one at most; what follows (the Interceptor, the dataplane, the first connection) is a small part of it (registering one service takes tens of µs, below). "+
		"A shorter `--refresh` shortens the wait in proportion and costs little: each refresh first asks the controller whether anything changed since the last (`GET /current-api-session/service-updates`) and lists the services only when something did.\n\n")

	fmt.Fprintf(b, "### `zfw -I` through the CLI\n\n")
	fmt.Fprintf(b, "An owner (`zfw.Firewall` serving `zfw/control` on a unix socket, nothing attached) and the `examples/zfw` binary run once per rule, one after the other, as a router's diverter calls it: %s calls per round, each adding a new TCP rule, median of %d rounds [min–max], process start-up included. "+
		"*In process* makes the same inserts through `control.Dial`, `Insert` and `Close` without starting a process: the difference is the cost of the exec. All %s rules are checked to be in the owner's table at the end.\n\n",
		count(res.cliCalls), res.cliRounds, count(2*res.cliCalls*res.cliRounds))
	rate := func(s bench.Spread) string {
		return fmt.Sprintf("%s [%s–%s]", count(int(s.Median)), count(int(s.Min)), count(int(s.Max)))
	}
	fmt.Fprintf(b, "| how | calls/s |\n|---|---|\n| `zfw -I`, one process per call | %s |\n| in process, one connection per call | %s |\n\n", rate(res.cliExec), rate(res.cliInProcess))

	fmt.Fprintf(b, "### Registering services through intercept/ziti\n\n")
	fmt.Fprintf(b, "An Interceptor (`intercept/ziti`) takes %s services (`internal/bench.ZitiServices`: intercept.v1, TCP and UDP, one address, two port ranges; 4 rules each), one `Update` each, into a kernel dataplane with the default capacities; its listeners open no socket (`bench.PortCounter`). Each of %d rounds uses a fresh Interceptor, closed (everything unregistered) after the count is checked. Median [min–max].\n\n",
		count(res.services), res.regRounds)
	perService := func(d time.Duration) string {
		return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(res.services))
	}
	fmt.Fprintf(b, "| services | rounds | all | per service |\n|---|---|---|---|\n| %s | %d | %s | %s |\n\n",
		count(res.services), res.regRounds, dur(res.register), perService(res.register.Median))
}

// warnOnly is log without its info and debug lines, for code that logs
// per item inside a timed loop.
func warnOnly(log logrus.FieldLogger) logrus.FieldLogger {
	quiet := logrus.New()
	quiet.SetLevel(logrus.WarnLevel)
	if l, ok := log.(*logrus.Logger); ok {
		quiet.SetOutput(l.Out)
		quiet.SetFormatter(l.Formatter)
	}
	return quiet
}
