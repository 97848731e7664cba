package bench

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestInterceptsAreValidAndCountedAsTheyCompile(t *testing.T) {
	for _, n := range []int{1, 50, 200, 1000} {
		ics := Intercepts(n, 20000, 2000)
		if len(ics) != n {
			t.Fatalf("Intercepts(%d) made %d", n, len(ics))
		}
		want := 0
		ids := make(map[string]bool)
		for _, ic := range ics {
			if err := ic.Validate(); err != nil {
				t.Fatalf("Intercepts(%d): %s: %v", n, ic.ServiceID, err)
			}
			if ids[ic.ServiceID] {
				t.Fatalf("Intercepts(%d): service id %s twice", n, ic.ServiceID)
			}
			ids[ic.ServiceID] = true
			want += ic.RuleCount()
		}
		if got := RuleCount(ics); got != want {
			t.Errorf("RuleCount(Intercepts(%d)) = %d, the intercepts compile to %d", n, got, want)
		}
	}
}

func TestPrefixKeysCountOneKeyPerProtocolAndPrefix(t *testing.T) {
	tests := []struct {
		n, want int
	}{
		// Each intercept: a host per family, TCP and UDP.
		{n: 1, want: 2},
		// The 50th adds a network per family.
		{n: 50, want: 2*50 + 2},
	}
	for _, tc := range tests {
		ics := Intercepts(tc.n, 1, 1)
		for _, v4 := range []bool{true, false} {
			if got := PrefixKeys(ics, v4); got != tc.want {
				t.Errorf("PrefixKeys(Intercepts(%d), v4=%v) = %d, want %d", tc.n, v4, got, tc.want)
			}
		}
	}
}

func TestHostAddrsAreDistinctPerIntercept(t *testing.T) {
	seen := make(map[string]bool)
	for i := range 70000 {
		for _, a := range []string{HostAddr(i).String(), HostAddr6(i).String()} {
			if seen[a] {
				t.Fatalf("address %s given to two intercepts (i=%d)", a, i)
			}
			seen[a] = true
		}
	}
}

func TestSummarizeReportsMedianAndExtremes(t *testing.T) {
	tests := []struct {
		in   []time.Duration
		want Timing
	}{
		{nil, Timing{}},
		{[]time.Duration{5}, Timing{5, 5, 5}},
		{[]time.Duration{9, 1, 5}, Timing{5, 1, 9}},
		{[]time.Duration{4, 1, 3, 2}, Timing{3, 1, 4}},
	}
	for _, tc := range tests {
		if got := Summarize(append([]time.Duration(nil), tc.in...)); got != tc.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// scripted returns a Round that yields its durations in turn and records
// each call in log under name.
func scripted(name string, log *[]string, ds ...time.Duration) Round {
	i := 0
	return func() (time.Duration, error) {
		*log = append(*log, name)
		if i >= len(ds) {
			return 0, errors.New(name + ": no more rounds")
		}
		i++
		return ds[i-1], nil
	}
}

func TestCompareSetsEachRoundAgainstTheFloorRunJustBeforeIt(t *testing.T) {
	var log []string
	// Warm-up rounds first (10, 99), then three pairs. The path is
	// always twice its round's floor, though both drift.
	floor := scripted("floor", &log, 10, 20, 40, 30)
	path := scripted("path", &log, 99, 40, 80, 60)
	c, err := Compare(path, floor, 3)
	if err != nil {
		t.Fatal(err)
	}
	if c.Factor != (Spread{Median: 2, Min: 2, Max: 2}) {
		t.Errorf("factor %+v, want 2 in every round", c.Factor)
	}
	if want := (Timing{Median: 60, Min: 40, Max: 80}); c.Path != want {
		t.Errorf("path %+v, want %+v (warm-up left out)", c.Path, want)
	}
	if want := (Timing{Median: 30, Min: 20, Max: 40}); c.Floor != want {
		t.Errorf("floor %+v, want %+v", c.Floor, want)
	}
	wantOrder := []string{"floor", "path", "floor", "path", "floor", "path", "floor", "path"}
	if !slices.Equal(log, wantOrder) {
		t.Errorf("rounds ran %v, want %v", log, wantOrder)
	}
}

func TestCompareFailsOnARoundThatFails(t *testing.T) {
	var log []string
	tests := []struct {
		name        string
		path, floor Round
	}{
		{"path", scripted("path", &log, 1, 1), scripted("floor", &log, 1, 1, 1)},
		{"floor", scripted("path", &log, 1, 1, 1), scripted("floor", &log, 1, 1)},
		{"floor reports no time", scripted("path", &log, 1, 1, 1), scripted("floor", &log, 1, 0, 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Compare(tc.path, tc.floor, 2); err == nil {
				t.Error("Compare succeeded")
			}
		})
	}
}
