package kernels

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Marker starts every line the matrix itself writes into a run's
// transcript (the guest's serial console, or the native run's log):
//
//	@@zfw-kernels kernel=RELEASE
//	@@zfw-kernels insmod=NAME rc=N
//	@@zfw-kernels begin=STEP
//	@@zfw-kernels step=STEP rc=N secs=S
//	@@zfw-kernels done
const Marker = "@@zfw-kernels"

// StepResult is what one step's test binary did.
type StepResult struct {
	Name    string  `json:"name"`
	Ran     bool    `json:"ran"` // its end marker was seen
	RC      int     `json:"rc"`
	Seconds float64 `json:"seconds"`
	Passed  int     `json:"passed"`  // top-level tests
	Failed  int     `json:"failed"`  // top-level tests
	Skipped int     `json:"skipped"` // top-level tests
	// Failures names the failed top-level tests.
	Failures []string `json:"failures,omitempty"`
	// Running names the top-level test that had started and not ended
	// when the step's output stopped: the one a hung or killed step was in.
	Running string `json:"running,omitempty"`
}

// OK reports whether the step ran, exited 0 and failed no test.
func (s StepResult) OK() bool { return s.Ran && s.RC == 0 && s.Failed == 0 }

// Transcript is what a run's output says.
type Transcript struct {
	Kernel string `json:"kernel"` // uname -r where the tests ran
	// ModuleFailures names modules whose insmod failed.
	ModuleFailures []string     `json:"module_failures,omitempty"`
	Steps          []StepResult `json:"steps"`
	// Verified holds the "<prog>: N verified instructions" lines tests log.
	Verified map[string]int `json:"verified_instructions,omitempty"`
	// LoadSeconds is the object load time a test logged ("load: 1.2s"),
	// the verifier's share of zfw.New.
	LoadSeconds float64 `json:"load_seconds,omitempty"`
	// NewSeconds holds every "zfw.New: loaded and attached in D" the
	// end-to-end tests logged: how long New takes on this kernel.
	NewSeconds []float64 `json:"new_seconds,omitempty"`
	// TestSeconds holds each top-level test's duration.
	TestSeconds map[string]float64 `json:"test_seconds,omitempty"`
	// ClsactFallback: the dataplane logged that TCX is missing and a
	// clsact filter was used instead.
	ClsactFallback bool `json:"clsact_fallback,omitempty"`
	// KernelErrors holds the kernel's own reports of a bug on the console
	// ("BUG: soft lockup ...", "Kernel panic ...", "WARNING: ..."), the
	// first of each kind, in order, with the test that was running.
	KernelErrors []string `json:"kernel_errors,omitempty"`
	Done         bool     `json:"done"` // the final marker was seen
}

var (
	verifiedRE = regexp.MustCompile(`\b([A-Za-z_][A-Za-z0-9_]*): ([0-9][0-9,]*) verified instructions`)
	loadRE     = regexp.MustCompile(`^\s+\S+\.go:\d+: load: (\S+)$`)
	newRE      = regexp.MustCompile(`zfw\.New: loaded and attached in (\S+)$`)
	testEndRE  = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)`)
	testRunRE  = regexp.MustCompile(`^=== RUN\s+([^/\s]+)$`)
	// kernelBugRE matches the kernel's console reports of its own bugs,
	// after the "[ 12.345678] " timestamp: the kind is the first group.
	kernelBugRE = regexp.MustCompile(`^\[\s*[0-9.]+\] (?:watchdog: )?(BUG: [^-:]+|Kernel panic|WARNING: CPU|rcu: INFO: rcu_\w+ detected stalls|INFO: task \S+ blocked)`)
)

// maxKernelErrors bounds KernelErrors: the first reports say what went
// wrong; a lockup repeats its own every few seconds until the guest dies.
const maxKernelErrors = 8

// ParseTranscript reads a run's output. It never fails on unexpected
// lines (the console carries kernel messages too); whether the run passed
// is for Check to say.
func ParseTranscript(r io.Reader) (*Transcript, error) {
	t := &Transcript{Verified: map[string]int{}, TestSeconds: map[string]float64{}}
	var cur *StepResult
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if i := strings.Index(line, Marker+" "); i >= 0 {
			cur = t.marker(strings.Fields(line[i+len(Marker):]), cur)
			continue
		}
		if m := verifiedRE.FindStringSubmatch(line); m != nil {
			if n, err := strconv.Atoi(strings.ReplaceAll(m[2], ",", "")); err == nil {
				t.Verified[m[1]] = n
			}
		}
		if m := newRE.FindStringSubmatch(line); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil {
				t.NewSeconds = append(t.NewSeconds, d.Seconds())
			}
		}
		if m := loadRE.FindStringSubmatch(line); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil {
				t.LoadSeconds = d.Seconds()
			}
		}
		if msg, kind, ok := kernelReport(line); ok {
			t.kernelError(kind, msg, cur)
		}
		if m := testRunRE.FindStringSubmatch(line); m != nil && cur != nil {
			cur.Running = m[1]
		}
		if strings.Contains(line, "attached with a clsact filter") {
			t.ClsactFallback = true
		}
		if m := testEndRE.FindStringSubmatch(line); m != nil && cur != nil {
			secs, _ := strconv.ParseFloat(m[3], 64)
			t.TestSeconds[m[2]] = secs
			if cur.Running == m[2] {
				cur.Running = ""
			}
			switch m[1] {
			case "PASS":
				cur.Passed++
			case "FAIL":
				cur.Failed++
				cur.Failures = append(cur.Failures, m[2])
			case "SKIP":
				cur.Skipped++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return t, fmt.Errorf("kernels: read transcript: %w", err)
	}
	return t, nil
}

// kernelReport reports whether line is the kernel's report of one of its
// own bugs, and returns the report without its timestamp and its kind
// ("BUG: soft lockup", "Kernel panic").
func kernelReport(line string) (msg, kind string, ok bool) {
	m := kernelBugRE.FindStringSubmatch(line)
	if m == nil {
		return "", "", false
	}
	return strings.TrimSpace(line[strings.Index(line, "]")+1:]), strings.TrimSpace(m[1]), true
}

// kernelError records msg, a kernel bug report of a kind not seen yet,
// naming the test that was running.
func (t *Transcript) kernelError(kind, msg string, cur *StepResult) {
	if len(t.KernelErrors) >= maxKernelErrors {
		return
	}
	for _, e := range t.KernelErrors {
		if strings.Contains(e, kind) {
			return
		}
	}
	if cur != nil && cur.Running != "" {
		msg += " (in " + cur.Running + ")"
	}
	t.KernelErrors = append(t.KernelErrors, msg)
}

// fatalKernelError reports whether a kernel report fails the run: a bug
// (a soft lockup, a bad pointer) or a panic does; a warning or a stall
// report, which a slow TCG guest can print without a bug, is only shown.
func fatalKernelError(e string) bool {
	return strings.HasPrefix(e, "BUG: ") || strings.HasPrefix(e, "watchdog: BUG: ") || strings.HasPrefix(e, "Kernel panic")
}

// marker applies one marker line's fields and returns the current step.
func (t *Transcript) marker(fields []string, cur *StepResult) *StepResult {
	kv := map[string]string{}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	switch {
	case kv["kernel"] != "":
		t.Kernel = kv["kernel"]
	case kv["insmod"] != "":
		if kv["rc"] != "0" {
			t.ModuleFailures = append(t.ModuleFailures, kv["insmod"])
		}
	case kv["begin"] != "":
		t.Steps = append(t.Steps, StepResult{Name: kv["begin"]})
		return &t.Steps[len(t.Steps)-1]
	case kv["step"] != "":
		if cur == nil || cur.Name != kv["step"] {
			t.Steps = append(t.Steps, StepResult{Name: kv["step"]})
			cur = &t.Steps[len(t.Steps)-1]
		}
		cur.Ran = true
		rc, err := strconv.Atoi(kv["rc"])
		if err != nil {
			rc = -1
		}
		cur.RC = rc
		cur.Seconds, _ = strconv.ParseFloat(kv["secs"], 64)
		return nil
	default:
		if _, ok := kv["done"]; ok {
			t.Done = true
		}
	}
	return cur
}

// Check returns nil if every step of plan ran and passed, every module
// loaded and the run reached its end; else an error saying what did not.
func (t *Transcript) Check(plan []Step) error {
	var probs []string
	if len(t.ModuleFailures) > 0 {
		probs = append(probs, "insmod failed: "+strings.Join(t.ModuleFailures, ","))
	}
	byName := map[string]StepResult{}
	for _, s := range t.Steps {
		byName[s.Name] = s
	}
	for _, p := range plan {
		s, ok := byName[p.Name]
		switch {
		case !ok:
			probs = append(probs, p.Name+": did not start")
		case !s.Ran && s.Running != "":
			probs = append(probs, p.Name+": did not finish, in "+s.Running)
		case !s.Ran:
			probs = append(probs, p.Name+": did not finish")
		case s.Failed > 0:
			probs = append(probs, fmt.Sprintf("%s: failed %s", p.Name, strings.Join(s.Failures, ",")))
		case s.RC != 0:
			probs = append(probs, fmt.Sprintf("%s: exit %d", p.Name, s.RC))
		case s.Passed == 0:
			probs = append(probs, p.Name+": no test passed")
		}
	}
	if !t.Done {
		probs = append(probs, "run did not reach its end")
	}
	for _, e := range t.KernelErrors {
		if fatalKernelError(e) {
			probs = append(probs, "kernel: "+e)
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%s", strings.Join(probs, "; "))
	}
	return nil
}
