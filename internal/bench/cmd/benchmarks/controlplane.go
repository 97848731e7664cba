package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/bench"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// controlRow is the control plane at one intercept count and one layout
// of TPROXY ports.
type controlRow struct {
	intercepts, rounds int
	// ports is the number of TPROXY ports the intercepts use: 1 (every
	// service on one, as OpenZiti's tunnelers have it) or one each.
	ports int
	// register and unregister: one service at a time through the Go
	// API; syncAdd and syncRemove: one Sync from none to all and back.
	register, unregister, syncAdd, syncRemove bench.Timing
	// heapBytes and mapBytes are what registering the intercepts added
	// to the Go heap (after GC) and to the kernel maps.
	heapBytes, mapBytes int64
}

type controlResults struct {
	rows []controlRow
	// defaultMaps is an empty dataplane with the default capacities.
	defaultMaps []bench.MapMemory
}

// portLayouts are the TPROXY port layouts the control plane is timed
// with for n intercepts, as numbers of ports: one shared port, and one
// port each (at most maxPorts, which the ports from 20,000 up can hold).
func portLayouts(n int) []int {
	return slices.Compact([]int{1, min(n, maxPorts)})
}

const maxPorts = 40000

func controlPlane(ctx context.Context, cfg config) (controlResults, error) {
	var res controlResults
	err := inNamespace(func() error {
		pin := benchPin()
		fw, err := zfw.New(zfw.Options{PinPath: pin, Logger: cfg.log})
		if err != nil {
			return err
		}
		res.defaultMaps, err = bench.PinnedMaps(pin)
		if cerr := fw.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return res, err
	}
	// Registering is timed with the dataplane attached, as users run it:
	// in the router of a topology, on its client-facing interface.
	topo, err := testenv.NewTopology(ctx, "zfwbench-")
	if err != nil {
		return res, err
	}
	defer topo.Close()
	for _, n := range cfg.cpCounts {
		for _, ports := range portLayouts(n) {
			cfg.log.Infof("control plane: %d intercepts on %d TPROXY ports", n, ports)
			row, err := controlAt(ctx, cfg, topo, n, ports)
			if err != nil {
				return res, fmt.Errorf("%d intercepts on %d TPROXY ports: %w", n, ports, err)
			}
			res.rows = append(res.rows, row)
		}
	}
	return res, nil
}

// benchName is a name of this process no other run uses, for its
// namespaces and pin folders: "zfwbench-PID-RAND", which
// testenv.CleanupStale("zfwbench-") finds once the process is gone.
func benchName() string {
	return fmt.Sprintf("zfwbench-%d-%08x", os.Getpid(), rand.Uint32())
}

// benchPin is a pin folder of its own for one dataplane.
func benchPin() string {
	return filepath.Join("/sys/fs/bpf", benchName())
}

// controlAt times registering and removing n intercepts on ports TPROXY
// ports both ways, over rounds (one round above 10,000), each round on a
// fresh dataplane whose maps are sized for them, attached in topo's
// router.
func controlAt(ctx context.Context, cfg config, topo *testenv.Topology, n, ports int) (controlRow, error) {
	ics := bench.Intercepts(n, 20000, ports)
	row := controlRow{intercepts: n, rounds: cfg.cpRounds, ports: ports}
	if n > 10000 {
		row.rounds = 1
	}
	var reg, unreg, add, remove []time.Duration
	for round := range row.rounds {
		pin := benchPin()
		var fw *zfw.Firewall
		err := topo.Router.Do(func() error {
			var err error
			fw, err = zfw.New(zfw.Options{
				PinPath:     pin,
				Interfaces:  []zfw.Interface{{Name: topo.RouterClientIf}},
				MaxRules:    bench.RuleCount(ics) + 1024,
				MaxPrefixes: max(bench.PrefixKeys(ics, true), bench.PrefixKeys(ics, false)) + 1024,
				Logger:      cfg.log,
			})
			return err
		})
		if err != nil {
			return row, err
		}
		err = func() error {
			heap0 := bench.HeapInUse()
			maps0, err := bench.PinnedMaps(pin)
			if err != nil {
				return err
			}
			d, err := bench.Each(ctx, ics, fw.Register)
			if err != nil {
				return fmt.Errorf("register: %w", err)
			}
			reg = append(reg, d)
			if round == 0 {
				row.heapBytes = int64(bench.HeapInUse()) - int64(heap0)
				maps1, err := bench.PinnedMaps(pin)
				if err != nil {
					return err
				}
				row.mapBytes = int64(bench.TotalBytes(maps1)) - int64(bench.TotalBytes(maps0))
			}
			d, err = bench.Each(ctx, ics, func(ctx context.Context, ic intercept.Intercept) error {
				return fw.Unregister(ctx, ic.ServiceID)
			})
			if err != nil {
				return fmt.Errorf("unregister: %w", err)
			}
			unreg = append(unreg, d)
			start := time.Now()
			if err := fw.Sync(ctx, ics); err != nil {
				return fmt.Errorf("sync: %w", err)
			}
			add = append(add, time.Since(start))
			start = time.Now()
			if err := fw.Sync(ctx, nil); err != nil {
				return fmt.Errorf("sync to none: %w", err)
			}
			remove = append(remove, time.Since(start))
			return nil
		}()
		if cerr := fw.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return row, err
		}
	}
	row.register, row.unregister = bench.Summarize(reg), bench.Summarize(unreg)
	row.syncAdd, row.syncRemove = bench.Summarize(add), bench.Summarize(remove)
	return row, nil
}
