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

// Repeated measures one frame run repeat times in the kernel per round,
// over rounds: the cost of a packet whose flow repeats, without the
// syscall. Programs that rewrite the packet need PerCall instead.
func (r *Runner) Repeated(frame []byte, repeat, rounds int) (Timing, error) {
	// An unmeasured run first: the program's code and data into cache.
	if _, _, err := r.Run(frame, repeat); err != nil {
		return Timing{}, err
	}
	samples := make([]time.Duration, 0, rounds)
	for range rounds {
		_, d, err := r.Run(frame, repeat)
		if err != nil {
			return Timing{}, err
		}
		samples = append(samples, d)
	}
	return Summarize(samples), nil
}

// PerCall measures frames run once per test run: perRound runs per
// round, the i-th of the whole measurement on frame(i), reporting each
// round's mean over rounds. A single run's time includes the kernel's
// timer reads around it and a cache that the syscall left cold, so
// compare it with the empty program measured the same way.
func (r *Runner) PerCall(frame func(i int) []byte, perRound, rounds int) (Timing, error) {
	i := 0
	for ; i < min(perRound, 100); i++ {
		if _, _, err := r.Run(frame(i), 1); err != nil {
			return Timing{}, err
		}
	}
	samples := make([]time.Duration, 0, rounds)
	for range rounds {
		var total time.Duration
		for range perRound {
			_, d, err := r.Run(frame(i), 1)
			if err != nil {
				return Timing{}, err
			}
			total += d
			i++
		}
		samples = append(samples, total/time.Duration(perRound))
	}
	return Summarize(samples), nil
}
