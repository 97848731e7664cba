package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// Eventually's first pause between checks, doubled after each failed one
// up to its longest: quick for what settles at once, gentle for what
// takes seconds (a controller's service poll).
const (
	firstPoll   = 10 * time.Millisecond
	longestPoll = 250 * time.Millisecond
)

// Eventually calls check until it returns nil, and then returns nil; if
// timeout passes or ctx ends first, it returns an error that names what
// and carries check's last error.
func Eventually(ctx context.Context, timeout time.Duration, what string, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pause := firstPoll
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %v: %w", what, timeout, err)
		case <-time.After(pause):
		}
		pause = min(2*pause, longestPoll)
	}
}

// WaitFor polls cond until it holds, and fails tb at once if it does not
// within timeout.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	err := Eventually(tb.Context(), timeout, what, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf("still false")
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// Logger is a logger at level that writes to tb's log until tb ends;
// lines from goroutines that outlive tb are dropped, not written to a
// finished test.
func Logger(tb testing.TB, level logrus.Level) logrus.FieldLogger {
	w := &testWriter{tb: tb}
	tb.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	log := logrus.New()
	log.SetOutput(w)
	log.SetLevel(level)
	return log
}

// testWriter hands each write to tb.Log while tb runs.
type testWriter struct {
	tb   testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// AskLine sends msg and a newline on c and returns the line that comes
// back, without its newline, within ten seconds.
func AskLine(c net.Conn, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}
