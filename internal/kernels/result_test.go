package kernels

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	tr := func() *Transcript {
		t.Helper()
		tr, err := ParseTranscript(strings.NewReader(passingTranscript))
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	cases := []struct {
		name string
		r    *Result
		want string
	}{
		{
			name: "qemu pass",
			r:    &Result{Mode: "qemu", Kernel: "6.1.0-57-amd64", Pass: true, Seconds: 61.04, Transcript: tr()},
			want: "kernel 6.1.0-57-amd64 (qemu): PASS 2 tests, 0 failed; load 6.9s e2e 11.2s; wall 61.0s; verified zfw_egress=12345 zfw_ingress=250308; object load 5.96s; zfw.New 1.25s (median of 2); clsact fallback",
		},
		{
			name: "native fail",
			r: &Result{Mode: "native", Kernel: "6.18.44", Seconds: 3, Error: "load: failed TestObjectsLoad", Transcript: &Transcript{
				Steps: []StepResult{{Name: "load", Ran: true, RC: 1, Seconds: 2.5, Failed: 1, Failures: []string{"TestObjectsLoad"}}},
			}},
			want: "kernel 6.18.44 (host, native): FAIL 1 tests, 1 failed; load 2.5s!; wall 3.0s; load: failed TestObjectsLoad",
		},
		{
			name: "hung in a test, with a kernel warning before",
			r: &Result{Mode: "qemu", Kernel: "6.1.0-57-amd64", Seconds: 240, Error: "e2e: did not finish, in TestEndToEndUDP", Transcript: &Transcript{
				Steps:        []StepResult{{Name: "e2e", Running: "TestEndToEndUDP"}},
				KernelErrors: []string{"WARNING: CPU: 1 PID: 197 at net/core/dev.c:1 f+0x1/0x2 (in TestEndToEndUDP)", "watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [zfw.test:197] (in TestEndToEndUDP)"},
			}},
			want: "kernel 6.1.0-57-amd64 (qemu): FAIL 0 tests, 0 failed; e2e unfinished (in TestEndToEndUDP); wall 240.0s; kernel said: WARNING: CPU: 1 PID: 197 at net/core/dev.c:1 f+0x1/0x2 (in TestEndToEndUDP); e2e: did not finish, in TestEndToEndUDP",
		},
		{
			name: "never ran",
			r:    &Result{Mode: "qemu", Kernel: "linux-image-amd64", Error: "apt-cache: exit 100"},
			want: "kernel linux-image-amd64 (qemu): FAIL 0 tests, 0 failed; wall 0.0s; apt-cache: exit 100",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.r.Summary(); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestReportJSON(t *testing.T) {
	tr, err := ParseTranscript(strings.NewReader(passingTranscript))
	if err != nil {
		t.Fatal(err)
	}
	rep := &Report{Plan: testPlan, Results: []*Result{{Label: "x", Mode: "qemu", Kernel: "6.1.0-57-amd64", Pass: true, Transcript: tr}}}
	path := filepath.Join(t.TempDir(), "sub", "results.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Results []struct {
			Kernel   string         `json:"kernel"`
			Pass     bool           `json:"pass"`
			Verified map[string]int `json:"verified_instructions"`
			Steps    []StepResult   `json:"steps"`
		} `json:"results"`
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != 1 || back.Results[0].Verified["zfw_ingress"] != 250308 || len(back.Results[0].Steps) != 2 || !back.Results[0].Pass {
		t.Errorf("read back %+v", back)
	}
	got, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Results) != 1 || got.Results[0].Summary() != rep.Results[0].Summary() {
		t.Errorf("ReadReport: %+v, want %+v", got.Results, rep.Results)
	}
	if _, err := ReadReport(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("ReadReport of a missing file succeeded")
	}
}
