package bench

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Runner runs a TC program through BPF_PROG_TEST_RUN as if the packet
// were on a given interface: the kernel takes the interface from the
// __sk_buff context's ifindex, so one loaded program can be measured on
// interfaces with different settings.
type Runner struct {
	prog *ebpf.Program
	// ctx is struct __sk_buff up to and including ifindex (offset 40);
	// the kernel accepts a prefix and requires the rest to be zero.
	ctx [11]uint32
	// runs counts the program runs made, warm-ups included.
	runs uint64
}

// NewRunner returns a Runner of prog on the interface ifindex (0 or 1:
// the namespace's loopback).
func NewRunner(prog *ebpf.Program, ifindex int) *Runner {
	r := &Runner{prog: prog}
	r.ctx[10] = uint32(ifindex)
	return r
}

// testRunAttr is union bpf_attr's test member (BPF_PROG_TEST_RUN).
type testRunAttr struct {
	progFD      uint32
	retval      uint32
	dataSizeIn  uint32
	dataSizeOut uint32
	dataIn      uint64
	dataOut     uint64
	repeat      uint32
	duration    uint32
	ctxSizeIn   uint32
	ctxSizeOut  uint32
	ctxIn       uint64
	ctxOut      uint64
	flags       uint32
	cpu         uint32
	batchSize   uint32
	_           uint32
}

// Run runs the program repeat times on frame and returns its return
// value and the kernel's mean time per run. Each run sees frame as
// given only if the program does not rewrite it: the kernel reuses one
// buffer for all repeats.
func (r *Runner) Run(frame []byte, repeat int) (uint32, time.Duration, error) {
	if len(frame) == 0 || repeat < 1 {
		return 0, 0, errors.New("test run: need a frame and repeat >= 1")
	}
	attr := testRunAttr{
		progFD:     uint32(r.prog.FD()),
		dataSizeIn: uint32(len(frame)),
		dataIn:     uint64(uintptr(unsafe.Pointer(&frame[0]))),
		repeat:     uint32(repeat),
		ctxSizeIn:  uint32(unsafe.Sizeof(r.ctx)),
		ctxIn:      uint64(uintptr(unsafe.Pointer(&r.ctx[0]))),
	}
	for {
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		runtime.KeepAlive(frame)
		runtime.KeepAlive(r)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, 0, fmt.Errorf("BPF_PROG_TEST_RUN: %w", errno)
		}
		r.runs += uint64(repeat)
		return attr.retval, time.Duration(attr.duration), nil
	}
}

// Runs is the number of program runs r has made, warm-ups included.
// A Runner is not safe for concurrent use.
func (r *Runner) Runs() uint64 { return r.runs }

// Round measures one round of runs and returns the mean time per run.
type Round func() (time.Duration, error)

// RepeatedRound returns a Round that runs frame repeat times inside one
// test run: the cost of a packet whose flow repeats, without the
// syscall. Programs that rewrite the packet need PerCallRound instead.
func (r *Runner) RepeatedRound(frame []byte, repeat int) Round {
	return func() (time.Duration, error) {
		_, d, err := r.Run(frame, repeat)
		return d, err
	}
}

// PerCallRound returns a Round of perRound test runs of one run each,
// the i-th run of all the Round's calls on frame(i). A single run's time
// includes the kernel's timer reads around it and a cache that the
// syscall left cold, so compare it with a floor measured the same way.
func (r *Runner) PerCallRound(frame func(i int) []byte, perRound int) Round {
	i := 0
	return func() (time.Duration, error) {
		var total time.Duration
		for range perRound {
			_, d, err := r.Run(frame(i), 1)
			if err != nil {
				return 0, err
			}
			total += d
			i++
		}
		return total / time.Duration(perRound), nil
	}
}

// Measure runs one unmeasured round (the program's code and data into
// cache) and then rounds measured ones.
func Measure(round Round, rounds int) (Timing, error) {
	if _, err := round(); err != nil {
		return Timing{}, err
	}
	samples := make([]time.Duration, 0, rounds)
	for range rounds {
		d, err := round()
		if err != nil {
			return Timing{}, err
		}
		samples = append(samples, d)
	}
	return Summarize(samples), nil
}

// Comparison is a path measured against a floor in alternating rounds.
type Comparison struct {
	Path, Floor Timing
	// Factor is the distribution over rounds of the path's time over
	// the floor's time in the same round.
	Factor Spread
}

// Compare measures path against floor: one unmeasured round of each,
// then rounds pairs of the floor's round followed by the path's, so a
// slow moment of a shared machine weighs on both sides of each ratio.
func Compare(path, floor Round, rounds int) (Comparison, error) {
	if _, err := floor(); err != nil {
		return Comparison{}, fmt.Errorf("floor: %w", err)
	}
	if _, err := path(); err != nil {
		return Comparison{}, err
	}
	var ps, fs []time.Duration
	var factors []float64
	for range rounds {
		f, err := floor()
		if err != nil {
			return Comparison{}, fmt.Errorf("floor: %w", err)
		}
		p, err := path()
		if err != nil {
			return Comparison{}, err
		}
		if f <= 0 {
			return Comparison{}, errors.New("floor: the kernel reported no time")
		}
		ps, fs = append(ps, p), append(fs, f)
		factors = append(factors, float64(p)/float64(f))
	}
	return Comparison{Path: Summarize(ps), Floor: Summarize(fs), Factor: SummarizeRates(factors)}, nil
}

// PinThread locks the calling goroutine to its OS thread and that thread
// to one of the CPUs the process may use: the last for fromLast 0, the
// one before it for 1, and so on (wrapping around when there are fewer).
// Test runs made from it share one CPU's caches and per-CPU maps; two
// ends of a stream pinned apart do not compete for one CPU. The returned
// function restores the thread's CPUs and unlocks it.
func PinThread(fromLast int) (func(), error) {
	runtime.LockOSThread()
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("pin thread: %w", err)
	}
	var allowed []int
	for c := range 8 * int(unsafe.Sizeof(was)) {
		if was.IsSet(c) {
			allowed = append(allowed, c)
		}
	}
	if len(allowed) == 0 {
		runtime.UnlockOSThread()
		return nil, errors.New("pin thread: no CPU allowed")
	}
	cpu := allowed[len(allowed)-1-fromLast%len(allowed)]
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("pin thread to CPU %d: %w", cpu, err)
	}
	return func() {
		// A thread left pinned would pin whatever runs on it next; if it
		// cannot be restored, keep it locked so that it dies with its goroutine.
		if unix.SchedSetaffinity(0, &was) == nil {
			runtime.UnlockOSThread()
		}
	}, nil
}
