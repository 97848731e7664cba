package kernels

import (
	"reflect"
	"strings"
	"testing"
)

var testPlan = []Step{
	{Name: "load", Binary: "bpfobj.test", Package: "./internal/bpfobj/", Run: ".", Timeout: 60e9},
	{Name: "e2e", Binary: "zfw.test", Package: "./zfw/", Run: "^TestEndToEndTCP$", Timeout: 60e9},
}

const passingTranscript = "\x1bc\x1b[?7lSeaBIOS (version 1.16.2)\r\n" +
	"@@zfw-kernels kernel=6.1.0-57-amd64\r\n" +
	"@@zfw-kernels insmod=nfnetlink rc=0\r\n" +
	"@@zfw-kernels begin=load\r\n" +
	"=== RUN   TestObjectsLoad\r\n" +
	"    load_test.go:27: load: 5.961s\r\n" +
	"    load_test.go:28: zfw_ingress: 250308 verified instructions\r\n" +
	"    load_test.go:29: zfw_egress: 12,345 verified instructions\r\n" +
	"--- PASS: TestObjectsLoad (6.23s)\r\n" +
	"PASS\r\n" +
	"@@zfw-kernels step=load rc=0 secs=6.90\r\n" +
	"@@zfw-kernels begin=e2e\r\n" +
	"[   12.000000] random: crng init done\r\n" +
	"=== RUN   TestEndToEndTCP\r\n" +
	"    e2e_test.go:61: zfw.New: loaded and attached in 1.5s\r\n" +
	"    e2e_kernel_test.go:90: kernel 6.1.0-57-amd64: attached with a clsact filter, and said why\r\n" +
	"    e2e_test.go:61: zfw.New: loaded and attached in 1s\r\n" +
	"--- PASS: TestEndToEndTCP (10.59s)\r\n" +
	"    --- PASS: TestEndToEndTCP/10.99.0.7:8080 (0.07s)\r\n" +
	"@@zfw-kernels step=e2e rc=0 secs=11.20\r\n" +
	"@@zfw-kernels done\r\n"

func TestParseTranscript(t *testing.T) {
	tr, err := ParseTranscript(strings.NewReader(passingTranscript))
	if err != nil {
		t.Fatal(err)
	}
	want := &Transcript{
		Kernel: "6.1.0-57-amd64",
		Steps: []StepResult{
			{Name: "load", Ran: true, Seconds: 6.9, Passed: 1},
			{Name: "e2e", Ran: true, Seconds: 11.2, Passed: 1},
		},
		Verified:       map[string]int{"zfw_ingress": 250308, "zfw_egress": 12345},
		LoadSeconds:    5.961,
		NewSeconds:     []float64{1.5, 1},
		TestSeconds:    map[string]float64{"TestObjectsLoad": 6.23, "TestEndToEndTCP": 10.59},
		ClsactFallback: true,
		Done:           true,
	}
	if !reflect.DeepEqual(tr, want) {
		t.Errorf("got  %+v\nwant %+v", tr, want)
	}
	if err := tr.Check(testPlan); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestTranscriptCheck(t *testing.T) {
	cases := []struct {
		name, transcript, want string
	}{
		{"passes", passingTranscript, ""},
		{
			"a failed test",
			strings.Replace(passingTranscript, "--- PASS: TestObjectsLoad", "--- FAIL: TestObjectsLoad", 1),
			"load: failed TestObjectsLoad",
		},
		{
			"a non-zero exit without a failed test (panic, timeout)",
			strings.Replace(passingTranscript, "step=e2e rc=0", "step=e2e rc=2", 1),
			"e2e: exit 2",
		},
		{
			"a step that never ended (guest died)",
			passingTranscript[:strings.Index(passingTranscript, "@@zfw-kernels step=e2e")],
			"e2e: did not finish; run did not reach its end",
		},
		{
			"a kernel hang inside a test (soft lockup, then the panic it causes)",
			passingTranscript[:strings.Index(passingTranscript, "    e2e_test.go:61")] +
				"[  212.062889] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [zfw.test:197]\r\n" +
				"[  212.062999] Call Trace:\r\n" +
				"[  216.966838] watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [ksoftirqd/0:14]\r\n" +
				"[  217.000000] Kernel panic - not syncing: softlockup: hung tasks\r\n",
			"e2e: did not finish, in TestEndToEndTCP; run did not reach its end; " +
				"kernel: watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [zfw.test:197] (in TestEndToEndTCP); " +
				"kernel: Kernel panic - not syncing: softlockup: hung tasks (in TestEndToEndTCP)",
		},
		{
			"a kernel warning alone does not fail the run",
			strings.Replace(passingTranscript, "[   12.000000] random: crng init done",
				"[   12.000000] WARNING: CPU: 1 PID: 197 at net/core/dev.c:1 f+0x1/0x2", 1),
			"",
		},
		{
			"a step that never started",
			strings.NewReplacer("begin=e2e", "begin=other", "step=e2e", "step=other").Replace(passingTranscript),
			"e2e: did not start",
		},
		{
			"a module that did not load",
			strings.Replace(passingTranscript, "insmod=nfnetlink rc=0", "insmod=nfnetlink rc=1", 1),
			"insmod failed: nfnetlink",
		},
		{
			"no test ran",
			strings.NewReplacer("--- PASS: TestEndToEndTCP (10.59s)", "testing: warning: no tests to run").Replace(passingTranscript),
			"e2e: no test passed",
		},
		{"empty", "", "load: did not start; e2e: did not start; run did not reach its end"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := ParseTranscript(strings.NewReader(c.transcript))
			if err != nil {
				t.Fatal(err)
			}
			err = tr.Check(testPlan)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != c.want {
				t.Errorf("Check = %q, want %q", got, c.want)
			}
		})
	}
}
