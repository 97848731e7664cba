package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startServer starts a Server on 127.0.0.1:0 (unless opts says otherwise)
// and closes it when the test ends.
func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// query sends one question to s over network ("udp" or "tcp").
func query(s *Server, network, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	// A generous timeout: a query may wait behind a test's blocked
	// onAllocate, and a loaded machine must not fail the test.
	c := &dns.Client{Net: network, Timeout: 30 * time.Second}
	resp, _, err := c.Exchange(m, s.LocalAddr().String())
	if err != nil {
		return nil, fmt.Errorf("%s query %s %s: %w", network, dns.TypeToString[qtype], name, err)
	}
	return resp, nil
}

// mustQuery is query for the test goroutine.
func mustQuery(t *testing.T, s *Server, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	resp, err := query(s, network, name, qtype)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// answerAddr returns the single address in resp, or an error describing
// what resp holds instead.
func answerAddr(resp *dns.Msg) (netip.Addr, error) {
	if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
		return netip.Addr{}, fmt.Errorf("reply %s with %d answers, want NOERROR with one", dns.RcodeToString[resp.Rcode], len(resp.Answer))
	}
	var ip []byte
	switch rr := resp.Answer[0].(type) {
	case *dns.A:
		ip = rr.A.To4()
	case *dns.AAAA:
		ip = rr.AAAA
	default:
		return netip.Addr{}, fmt.Errorf("answer %s is not an address", rr)
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, fmt.Errorf("answer %v is not an address", ip)
	}
	return addr, nil
}

func mustAnswerAddr(t *testing.T, resp *dns.Msg) netip.Addr {
	t.Helper()
	addr, err := answerAddr(resp)
	if err != nil {
		t.Fatalf("%v\n%s", err, resp)
	}
	return addr
}

func wantRcode(t *testing.T, resp *dns.Msg, rcode int) {
	t.Helper()
	if resp.Rcode != rcode || len(resp.Answer) != 0 {
		t.Fatalf("reply %s with %d answers, want %s with none\n%s",
			dns.RcodeToString[resp.Rcode], len(resp.Answer), dns.RcodeToString[rcode], resp)
	}
}

func TestHostnameIsAnsweredOverUDPAndTCPCaseInsensitively(t *testing.T) {
	s := startServer(t, Options{})
	addr, err := s.AddHostname("svc-1", "DB.Internal.")
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("100.64.0.2"); addr != want {
		t.Fatalf("first host name got %s, want %s", addr, want)
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, name := range []string{"db.internal", "DB.INTERNAL.", "dB.iNtErNaL"} {
			t.Run(network+"/"+name, func(t *testing.T) {
				resp := mustQuery(t, s, network, name, dns.TypeA)
				if got := mustAnswerAddr(t, resp); got != addr {
					t.Fatalf("answer %s, want %s", got, addr)
				}
				rr := resp.Answer[0].Header()
				if rr.Name != dns.Fqdn(name) {
					t.Errorf("answer name %q, want the question's %q", rr.Name, dns.Fqdn(name))
				}
				if rr.Ttl != uint32(DefaultTTL/time.Second) {
					t.Errorf("TTL %d, want %d", rr.Ttl, DefaultTTL/time.Second)
				}
				if !resp.Authoritative || resp.RecursionAvailable {
					t.Errorf("AA=%v RA=%v, want AA and no RA", resp.Authoritative, resp.RecursionAvailable)
				}
			})
		}
	}
	if name, ok := s.Lookup(addr); !ok || name != "db.internal" {
		t.Fatalf("Lookup(%s) = %q, %v; want db.internal", addr, name, ok)
	}
}

func TestTTLOptionIsUsedInAnswers(t *testing.T) {
	s := startServer(t, Options{TTL: 5 * time.Second})
	if _, err := s.AddHostname("o", "a.test"); err != nil {
		t.Fatal(err)
	}
	resp := mustQuery(t, s, "udp", "a.test", dns.TypeA)
	mustAnswerAddr(t, resp)
	if ttl := resp.Answer[0].Header().Ttl; ttl != 5 {
		t.Fatalf("TTL %d, want 5", ttl)
	}
}

func TestHostnameSharedByTwoOwnersLivesUntilBothRemoveIt(t *testing.T) {
	s := startServer(t, Options{Range: netip.MustParsePrefix("10.9.0.0/29")})
	a1, err := s.AddHostname("svc-1", "shared.test")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := s.AddHostname("svc-2", "SHARED.test")
	if err != nil {
		t.Fatal(err)
	}
	if a1 != a2 {
		t.Fatalf("two owners got %s and %s, want one address", a1, a2)
	}
	// Adding again for the same owner changes nothing.
	if a, _ := s.AddHostname("svc-1", "shared.test"); a != a1 {
		t.Fatalf("re-adding got %s, want %s", a, a1)
	}

	s.RemoveHostname("svc-1", "shared.test")
	if got := mustAnswerAddr(t, mustQuery(t, s, "udp", "shared.test", dns.TypeA)); got != a1 {
		t.Fatalf("after one owner left: answer %s, want %s", got, a1)
	}
	s.RemoveHostname("svc-1", "shared.test") // again: svc-1 no longer owns it
	if _, ok := s.Lookup(a1); !ok {
		t.Fatal("a second removal by the same owner released the name")
	}

	s.RemoveHostname("svc-2", "shared.test.")
	wantRcode(t, mustQuery(t, s, "udp", "shared.test", dns.TypeA), dns.RcodeRefused)
	if name, ok := s.Lookup(a1); ok {
		t.Fatalf("Lookup(%s) = %q after both owners left", a1, name)
	}
	if n := inUse(s); n != 0 {
		t.Fatalf("%d addresses in use after every name went away", n)
	}
}

func TestReleasedAddressesAreReusedOnlyAfterFreshOnes(t *testing.T) {
	s := startServer(t, Options{Range: netip.MustParsePrefix("10.9.0.0/29")}) // .2 … .6
	add := func(name string) netip.Addr {
		t.Helper()
		a, err := s.AddHostname("o", name)
		if err != nil {
			t.Fatalf("AddHostname(%s): %v", name, err)
		}
		return a
	}
	first := add("one.test")
	s.RemoveHostname("o", "one.test")
	var got []string
	for _, name := range []string{"two.test", "three.test", "four.test", "five.test", "six.test"} {
		got = append(got, add(name).String())
	}
	want := []string{"10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6", first.String()}
	if !slices.Equal(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
	if _, err := s.AddHostname("o", "seven.test"); !errors.Is(err, ErrRangeExhausted) {
		t.Fatalf("AddHostname on a full range: %v, want ErrRangeExhausted", err)
	}
}

func TestNamesNobodyOwnsAreRefused(t *testing.T) {
	s := startServer(t, Options{})
	if _, err := s.AddHostname("o", "mine.test"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddWildcard("o", "*.example.com", nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		qtype uint16
	}{
		{"other.test", dns.TypeA},
		{"other.test", dns.TypeAAAA},
		{"other.test", dns.TypeMX},
		{"sub.mine.test", dns.TypeA},      // a host name is not a domain
		{"example.com", dns.TypeA},        // "*.example.com" does not match the domain itself
		{"example.com", dns.TypeAAAA},     // nor for other types
		{"notexample.com", dns.TypeA},     // a suffix must start at a label
		{"a.example.com.evil", dns.TypeA}, // nor be in the middle
		{"100.64.0.2", dns.TypeA},         // an address is not a name
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(network+"/"+dns.TypeToString[tt.qtype]+"/"+tt.name, func(t *testing.T) {
				wantRcode(t, mustQuery(t, s, network, tt.name, tt.qtype), dns.RcodeRefused)
			})
		}
	}
	if n := inUse(s); n != 1 {
		t.Fatalf("%d addresses in use, want 1 (refused queries allocate nothing)", n)
	}
}

func TestOwnedNamesAnswerOtherTypesWithEmptyNoError(t *testing.T) {
	s := startServer(t, Options{})
	if _, err := s.AddHostname("o", "mine.test"); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	err := s.AddWildcard("o", "*.example.com", rec.callback("o"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mine.test", "MINE.test", "new.example.com"} {
		for _, qtype := range []uint16{dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeANY} {
			t.Run(dns.TypeToString[qtype]+"/"+name, func(t *testing.T) {
				resp := mustQuery(t, s, "udp", name, qtype)
				wantRcode(t, resp, dns.RcodeSuccess)
				if !resp.Authoritative {
					t.Error("reply is not authoritative")
				}
			})
		}
	}
	// Only A queries allocate: the AAAA for new.example.com must not have.
	if calls := rec.take(); len(calls) != 0 {
		t.Fatalf("onAllocate called by non-A queries: %v", calls)
	}
	if n := inUse(s); n != 1 {
		t.Fatalf("%d addresses in use, want 1", n)
	}
}

// inUse returns how many addresses s has handed out. It takes the table's
// lock: a reply over the network is no synchronisation the race detector
// sees.
func inUse(s *Server) int {
	s.table.mu.Lock()
	defer s.table.mu.Unlock()
	return s.table.alloc.InUse()
}

// allocation is one onAllocate call.
type allocation struct {
	owner, name string
	addr        netip.Addr
}

// recorder records onAllocate calls, and fails them while failing is set.
type recorder struct {
	mu      sync.Mutex
	calls   []allocation
	failing map[string]bool // owner → fail
}

func (r *recorder) callback(owner string) func(string, netip.Addr) error {
	return func(name string, addr netip.Addr) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls = append(r.calls, allocation{owner, name, addr})
		if r.failing[owner] {
			return fmt.Errorf("owner %s cannot intercept %s", owner, name)
		}
		return nil
	}
}

func (r *recorder) take() []allocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	r.calls = nil
	return calls
}

func TestWildcardAllocatesAtQueryTimeAndCallsOnAllocateBeforeAnswering(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s := startServer(t, Options{})
			var rec recorder
			var lookupDuringCallback string
			err := s.AddWildcard("svc-1", "*.Example.com.", func(name string, addr netip.Addr) error {
				looked, _ := s.Lookup(addr)
				rec.mu.Lock()
				lookupDuringCallback = looked
				rec.mu.Unlock()
				return rec.callback("svc-1")(name, addr)
			})
			if err != nil {
				t.Fatal(err)
			}
			if n := inUse(s); n != 0 {
				t.Fatalf("AddWildcard allocated %d addresses", n)
			}

			addr := mustAnswerAddr(t, mustQuery(t, s, network, "A.b.EXAMPLE.com", dns.TypeA))
			// The answer is here: the callback must already have run.
			want := []allocation{{"svc-1", "a.b.example.com", addr}}
			if got := rec.take(); !slices.Equal(got, want) {
				t.Fatalf("onAllocate calls when the answer arrived = %v, want %v", got, want)
			}
			if addr != netip.MustParseAddr("100.64.0.2") {
				t.Errorf("first wildcard name got %s, want 100.64.0.2", addr)
			}
			rec.mu.Lock()
			looked := lookupDuringCallback
			rec.mu.Unlock()
			if looked != "a.b.example.com" {
				t.Errorf("Lookup inside onAllocate = %q, want a.b.example.com", looked)
			}

			// Asking again answers from the table, without a callback.
			if got := mustAnswerAddr(t, mustQuery(t, s, network, "a.b.example.com", dns.TypeA)); got != addr {
				t.Fatalf("second answer %s, want %s", got, addr)
			}
			if got := rec.take(); len(got) != 0 {
				t.Fatalf("second query called onAllocate: %v", got)
			}

			other := mustAnswerAddr(t, mustQuery(t, s, network, "c.example.com", dns.TypeA))
			if other == addr {
				t.Fatalf("two names share %s", addr)
			}
			if got := rec.take(); !slices.Equal(got, []allocation{{"svc-1", "c.example.com", other}}) {
				t.Fatalf("onAllocate calls = %v", got)
			}

			// The last owner goes: its names and addresses with it.
			s.RemoveWildcard("svc-1", "*.example.com")
			for _, a := range []netip.Addr{addr, other} {
				if name, ok := s.Lookup(a); ok {
					t.Errorf("Lookup(%s) = %q after the wildcard was removed", a, name)
				}
			}
			wantRcode(t, mustQuery(t, s, network, "a.b.example.com", dns.TypeA), dns.RcodeRefused)
			if n := inUse(s); n != 0 {
				t.Fatalf("%d addresses in use after the wildcard was removed", n)
			}
		})
	}
}

func TestOnAllocateErrorFailsTheQueryAndKeepsNoAllocation(t *testing.T) {
	s := startServer(t, Options{})
	rec := recorder{failing: map[string]bool{"svc-1": true}}
	if err := s.AddWildcard("svc-1", "*.example.com", rec.callback("svc-1")); err != nil {
		t.Fatal(err)
	}
	wantRcode(t, mustQuery(t, s, "udp", "a.example.com", dns.TypeA), dns.RcodeServerFailure)
	calls := rec.take()
	if len(calls) != 1 {
		t.Fatalf("onAllocate calls = %v, want one", calls)
	}
	if name, ok := s.Lookup(calls[0].addr); ok {
		t.Fatalf("Lookup(%s) = %q after a failed allocation", calls[0].addr, name)
	}
	if n := inUse(s); n != 0 {
		t.Fatalf("%d addresses in use after a failed allocation", n)
	}

	// Once the owner can intercept, the name resolves; the failed
	// address is not reused first (fresh addresses are).
	rec.mu.Lock()
	rec.failing = nil
	rec.mu.Unlock()
	addr := mustAnswerAddr(t, mustQuery(t, s, "udp", "a.example.com", dns.TypeA))
	if addr == calls[0].addr {
		t.Fatalf("the address of the failed allocation, %s, was handed out again at once", addr)
	}
	if name, ok := s.Lookup(addr); !ok || name != "a.example.com" {
		t.Fatalf("Lookup(%s) = %q, %v", addr, name, ok)
	}
}

func TestOnAllocateErrorOfOneOwnerHoldsTheAddressForOwnersThatAcceptedIt(t *testing.T) {
	s := startServer(t, Options{Range: netip.MustParsePrefix("10.9.0.0/30")}) // one address
	rec := recorder{failing: map[string]bool{"svc-b": true}}
	for _, owner := range []string{"svc-a", "svc-b"} {
		if err := s.AddWildcard(owner, "*.example.com", rec.callback(owner)); err != nil {
			t.Fatal(err)
		}
	}
	wantRcode(t, mustQuery(t, s, "udp", "x.example.com", dns.TypeA), dns.RcodeServerFailure)
	addr := netip.MustParseAddr("10.9.0.2")
	want := []allocation{{"svc-a", "x.example.com", addr}, {"svc-b", "x.example.com", addr}}
	if got := rec.take(); !slices.Equal(got, want) {
		t.Fatalf("onAllocate calls = %v, want %v", got, want)
	}
	if _, ok := s.Lookup(addr); ok {
		t.Fatal("the name of a failed query is still known")
	}
	// svc-a may be intercepting 10.9.0.2: it must not go to another name.
	if _, err := s.AddHostname("h", "other.test"); !errors.Is(err, ErrRangeExhausted) {
		t.Fatalf("AddHostname while the address is held: %v, want ErrRangeExhausted", err)
	}
	s.RemoveWildcard("svc-a", "*.example.com")
	got, err := s.AddHostname("h", "other.test")
	if err != nil || got != addr {
		t.Fatalf("AddHostname after svc-a left = %s, %v; want %s", got, err, addr)
	}
}

func TestWildcardsOfSeveralOwnersShareOneAddressAndEachIsTold(t *testing.T) {
	s := startServer(t, Options{})
	var rec recorder
	regs := []struct{ owner, pattern string }{
		{"svc-b", "*.example.com"},
		{"svc-a", "*.EXAMPLE.com"},
		{"svc-c", "*.b.example.com"},
	}
	for _, r := range regs {
		if err := s.AddWildcard(r.owner, r.pattern, rec.callback(r.owner)); err != nil {
			t.Fatal(err)
		}
	}
	addr := mustAnswerAddr(t, mustQuery(t, s, "udp", "x.b.example.com", dns.TypeA))
	// Most specific domain first, then by owner.
	want := []allocation{
		{"svc-c", "x.b.example.com", addr},
		{"svc-a", "x.b.example.com", addr},
		{"svc-b", "x.b.example.com", addr},
	}
	if got := rec.take(); !slices.Equal(got, want) {
		t.Fatalf("onAllocate calls = %v, want %v", got, want)
	}

	// An owner registering later is told on the next query, with the same address.
	if err := s.AddWildcard("svc-d", "*.example.com", rec.callback("svc-d")); err != nil {
		t.Fatal(err)
	}
	if got := mustAnswerAddr(t, mustQuery(t, s, "tcp", "x.b.example.com", dns.TypeA)); got != addr {
		t.Fatalf("answer %s, want %s", got, addr)
	}
	if got := rec.take(); !slices.Equal(got, []allocation{{"svc-d", "x.b.example.com", addr}}) {
		t.Fatalf("onAllocate calls after svc-d joined = %v", got)
	}

	// The name lives while any owner does.
	for i, owner := range []string{"svc-a", "svc-b", "svc-c", "svc-d"} {
		pattern := "*.example.com"
		if owner == "svc-c" {
			pattern = "*.b.example.com"
		}
		s.RemoveWildcard(owner, pattern)
		name, ok := s.Lookup(addr)
		if last := i == 3; ok == last || (ok && name != "x.b.example.com") {
			t.Fatalf("after removing %s: Lookup(%s) = %q, %v", owner, addr, name, ok)
		}
	}
	if n := inUse(s); n != 0 {
		t.Fatalf("%d addresses in use after every owner left", n)
	}
}

func TestHostnameUnderAWildcardKeepsItsAddressForBoth(t *testing.T) {
	s := startServer(t, Options{})
	var rec recorder
	addr, err := s.AddHostname("svc-h", "db.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddWildcard("svc-w", "*.example.com", rec.callback("svc-w")); err != nil {
		t.Fatal(err)
	}
	if got := mustAnswerAddr(t, mustQuery(t, s, "udp", "db.example.com", dns.TypeA)); got != addr {
		t.Fatalf("answer %s, want the host name's %s", got, addr)
	}
	if got := rec.take(); !slices.Equal(got, []allocation{{"svc-w", "db.example.com", addr}}) {
		t.Fatalf("onAllocate calls = %v", got)
	}
	s.RemoveHostname("svc-h", "db.example.com")
	if got := mustAnswerAddr(t, mustQuery(t, s, "udp", "db.example.com", dns.TypeA)); got != addr {
		t.Fatalf("after the host name's owner left: answer %s, want %s", got, addr)
	}
	s.RemoveWildcard("svc-w", "*.example.com")
	if _, ok := s.Lookup(addr); ok {
		t.Fatal("name still known after both owners left")
	}
}

func TestInvalidNamesAndPatternsAreRejected(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", ".", "*.example.com", "a*b.test", "10.0.0.1", "fd00::1", "a..b", ".a.b", "with space.test"} {
		if addr, err := s.AddHostname("o", name); err == nil {
			t.Errorf("AddHostname(%q) = %s, want an error", name, addr)
		}
	}
	for _, pattern := range []string{"", "*", "*.", "example.com", "a.*.example.com", "*.*.example.com", "**.example.com"} {
		if err := s.AddWildcard("o", pattern, nil); err == nil {
			t.Errorf("AddWildcard(%q) succeeded, want an error", pattern)
		}
	}
	if n := inUse(s); n != 0 {
		t.Fatalf("%d addresses in use after rejected names", n)
	}
}

func TestIPv6RangeAnswersAAAA(t *testing.T) {
	s := startServer(t, Options{Range: netip.MustParsePrefix("fd00:64::/120")})
	addr, err := s.AddHostname("o", "v6.test")
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("fd00:64::2"); addr != want {
		t.Fatalf("first address %s, want %s", addr, want)
	}
	if got := mustAnswerAddr(t, mustQuery(t, s, "udp", "v6.test", dns.TypeAAAA)); got != addr {
		t.Fatalf("AAAA answer %s, want %s", got, addr)
	}
	wantRcode(t, mustQuery(t, s, "udp", "v6.test", dns.TypeA), dns.RcodeSuccess)
}

func TestServerDoesNotAllocateTheAddressItListensOn(t *testing.T) {
	s := startServer(t, Options{Addr: "127.0.0.2:0", Range: netip.MustParsePrefix("127.0.0.0/29")})
	if got := s.LocalAddr().Addr(); got != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("listening on %s, want 127.0.0.2", got)
	}
	addr, err := s.AddHostname("o", "a.test")
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("127.0.0.3"); addr != want {
		t.Fatalf("first address %s, want %s (127.0.0.2 is the server's)", addr, want)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"sub-second TTL", Options{TTL: 500 * time.Millisecond}},
		{"negative TTL", Options{TTL: -time.Second}},
		{"range without usable addresses", Options{Range: netip.MustParsePrefix("10.0.0.0/31")}},
		{"address without port", Options{Addr: "127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestServerStopsOnContextAndOnClose(t *testing.T) {
	t.Run("Serve returns when the context is done", func(t *testing.T) {
		s, err := New(Options{Addr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		served := make(chan error, 1)
		go func() { served <- s.Serve(ctx) }()
		// Serve starts asynchronously; wait until it answers.
		if _, err := s.AddHostname("o", "up.test"); err != nil {
			t.Fatal(err)
		}
		for s.LocalAddr().Port() == 0 {
			select {
			case err := <-served:
				t.Fatalf("Serve returned early: %v", err)
			default:
			}
			time.Sleep(time.Millisecond)
		}
		mustAnswerAddr(t, mustQuery(t, s, "tcp", "up.test", dns.TypeA))
		cancel()
		if err := <-served; err != nil {
			t.Fatalf("Serve = %v, want nil after cancel", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close after Serve returned: %v", err)
		}
	})
	t.Run("Close stops a started server and is idempotent", func(t *testing.T) {
		s, err := New(Options{Addr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s.LocalAddr().Port() == 0 {
			t.Fatal("LocalAddr has no port")
		}
		if err := s.Start(context.Background()); err == nil {
			t.Fatal("second Start succeeded")
		}
		for range 2 {
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		if err := s.Start(context.Background()); err == nil {
			t.Fatal("Start after Close succeeded")
		}
	})
	t.Run("Close without Start", func(t *testing.T) {
		s, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}
