package dns

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// waitingQueries returns how many queries wait for a pending name.
func waitingQueries(s *Server) int {
	s.table.mu.Lock()
	defer s.table.mu.Unlock()
	return s.table.waiting
}

func TestNoAnswerLeavesWhileOnAllocateRunsAndConcurrentQueriesShareIt(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s := startServer(t, Options{})
			var rec recorder
			entered := make(chan struct{})
			release := make(chan struct{})
			var once sync.Once
			err := s.AddWildcard("svc-1", "*.example.com", func(name string, addr netip.Addr) error {
				err := rec.callback("svc-1")(name, addr)
				// The first call blocks until the test lets it go.
				once.Do(func() {
					close(entered)
					<-release
				})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}

			type result struct {
				addr netip.Addr
				err  error
			}
			const queries = 8
			answers := make(chan result, queries)
			ask := func() {
				resp, err := query(s, network, "same.example.com", dns.TypeA)
				var addr netip.Addr
				if err == nil {
					addr, err = answerAddr(resp)
				}
				answers <- result{addr, err}
			}
			go ask()
			<-entered
			for range queries - 1 {
				go ask()
			}
			// Every other query must queue behind the running callback, and
			// no answer, not even the first, may arrive meanwhile.
			for waitingQueries(s) < queries-1 {
				select {
				case r := <-answers:
					close(release)
					t.Fatalf("an answer (%s, %v) arrived while onAllocate was running", r.addr, r.err)
				default:
					time.Sleep(time.Millisecond)
				}
			}
			select {
			case r := <-answers:
				close(release)
				t.Fatalf("an answer (%s, %v) arrived while onAllocate was running", r.addr, r.err)
			default:
			}
			close(release)

			var first netip.Addr
			for i := range queries {
				r := <-answers
				if r.err != nil {
					t.Fatal(r.err)
				}
				if i == 0 {
					first = r.addr
				} else if r.addr != first {
					t.Fatalf("answers %s and %s for one name", first, r.addr)
				}
			}
			if calls := rec.take(); len(calls) != 1 || calls[0].addr != first {
				t.Fatalf("onAllocate calls = %v, want one with %s", calls, first)
			}
		})
	}
}

func TestQueriesRaceAddAndRemoveSafely(t *testing.T) {
	s := startServer(t, Options{Range: netip.MustParsePrefix("10.9.0.0/24")})
	var (
		mu       sync.Mutex
		problems []string
	)
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	// Each callback checks that the table agrees with what it is told.
	check := func(owner string) func(string, netip.Addr) error {
		return func(name string, addr netip.Addr) error {
			if got, ok := s.Lookup(addr); !ok || got != name {
				report("%s told %s = %s, but Lookup says %q, %v", owner, name, addr, got, ok)
			}
			return nil
		}
	}
	const rounds = 40
	var wg sync.WaitGroup
	for w := range 2 {
		owner := fmt.Sprintf("wild-%d", w)
		wg.Go(func() {
			for range rounds {
				if err := s.AddWildcard(owner, "*.example.com", check(owner)); err != nil {
					report("AddWildcard: %v", err)
				}
				s.RemoveWildcard(owner, "*.example.com")
			}
			if err := s.AddWildcard(owner, "*.example.com", check(owner)); err != nil {
				report("AddWildcard: %v", err)
			}
		})
	}
	for h := range 2 {
		owner := fmt.Sprintf("host-%d", h)
		wg.Go(func() {
			for i := range rounds {
				name := fmt.Sprintf("n%d.example.com", i%4)
				addr, err := s.AddHostname(owner, name)
				if err != nil {
					report("AddHostname(%s): %v", name, err)
					continue
				}
				if got, ok := s.Lookup(addr); !ok || got != name {
					report("AddHostname(%s) = %s, but Lookup says %q, %v", name, addr, got, ok)
				}
				s.RemoveHostname(owner, name)
			}
		})
	}
	for q := range 4 {
		network := []string{"udp", "tcp"}[q%2]
		wg.Go(func() {
			for i := range rounds {
				name := fmt.Sprintf("n%d.example.com", (i+q)%6)
				resp, err := query(s, network, name, dns.TypeA)
				if err != nil {
					report("%v", err)
					continue
				}
				switch resp.Rcode {
				case dns.RcodeRefused: // nobody owned it at that moment
				case dns.RcodeSuccess:
					addr, err := answerAddr(resp)
					if err != nil || !s.Range().Contains(addr) {
						report("%s: answer %s, %v", name, addr, err)
					}
				default:
					report("%s: rcode %s", name, dns.RcodeToString[resp.Rcode])
				}
			}
		})
	}
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}

	// Both wildcards are registered now: every name resolves, consistently.
	for i := range 6 {
		name := fmt.Sprintf("n%d.example.com", i)
		addr := mustAnswerAddr(t, mustQuery(t, s, "udp", name, dns.TypeA))
		if got, ok := s.Lookup(addr); !ok || got != name {
			t.Fatalf("%s answered %s, but Lookup says %q, %v", name, addr, got, ok)
		}
	}
	s.RemoveWildcard("wild-0", "*.example.com")
	s.RemoveWildcard("wild-1", "*.example.com")
	if n := inUse(s); n != 0 {
		t.Fatalf("%d addresses in use after every owner left", n)
	}
	s.table.mu.Lock()
	defer s.table.mu.Unlock()
	if len(s.table.names) != 0 || len(s.table.addrs) != 0 || len(s.table.wildcards) != 0 || len(s.table.held) != 0 {
		t.Fatalf("table not empty: %d names, %d addrs, %d wildcards, %d held",
			len(s.table.names), len(s.table.addrs), len(s.table.wildcards), len(s.table.held))
	}
}

// An owner (like intercept/ziti's Interceptor) may call RemoveWildcard while
// holding a lock that its onAllocate takes: RemoveWildcard must not wait for
// the callback, and the callback's refusal must not count once its owner
// has gone.
func TestRemoveWildcardDoesNotWaitForARunningOnAllocate(t *testing.T) {
	tests := []struct {
		name       string
		otherOwner bool // another owner's wildcard accepts the name
		wantRcode  int
	}{
		{"sole owner leaves: the name is nobody's", false, dns.RcodeRefused},
		{"another owner stays: the name resolves", true, dns.RcodeSuccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{})
			var rec recorder
			if tt.otherOwner {
				if err := s.AddWildcard("svc-a", "*.example.com", rec.callback("svc-a")); err != nil {
					t.Fatal(err)
				}
			}
			var ownerMu sync.Mutex
			gone := false
			entered := make(chan struct{})
			err := s.AddWildcard("svc-b", "*.example.com", func(name string, addr netip.Addr) error {
				close(entered)
				ownerMu.Lock()
				defer ownerMu.Unlock()
				if gone {
					return fmt.Errorf("svc-b is no longer intercepted")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			ownerMu.Lock()
			replies := make(chan *dns.Msg, 1)
			go func() {
				resp, err := query(s, "udp", "x.example.com", dns.TypeA)
				if err != nil {
					t.Error(err)
				}
				replies <- resp
			}()
			<-entered
			s.RemoveWildcard("svc-b", "*.example.com") // must return while the callback waits for ownerMu
			gone = true
			ownerMu.Unlock()

			resp := <-replies
			if resp == nil {
				return
			}
			if tt.wantRcode == dns.RcodeRefused {
				wantRcode(t, resp, dns.RcodeRefused)
				if n := inUse(s); n != 0 {
					t.Fatalf("%d addresses in use after the only owner left", n)
				}
				return
			}
			addr := mustAnswerAddr(t, resp)
			if name, ok := s.Lookup(addr); !ok || name != "x.example.com" {
				t.Fatalf("Lookup(%s) = %q, %v", addr, name, ok)
			}
			s.RemoveWildcard("svc-a", "*.example.com")
			if n := inUse(s); n != 0 {
				t.Fatalf("%d addresses in use after every owner left", n)
			}
		})
	}
}
