package dns

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzAnswer hands the server any message a local client could send: the
// answer always exists, packs, and answers that message (its id, the
// reply bit); REFUSED for names nobody owns, which the fuzzer's names
// almost always are.
func FuzzAnswer(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"db.internal.", dns.TypeA}, {"x.apps.example.", dns.TypeA}, {"db.internal.", dns.TypeAAAA},
		{"other.example.", dns.TypeA}, {".", dns.TypeNS}, {"db.internal.", dns.TypeTXT},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(1232, false)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // an UPDATE with no question
	s, err := New(Options{})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := s.AddHostname("svc", "db.internal"); err != nil {
		f.Fatal(err)
	}
	if err := s.AddWildcard("svc", "*.apps.example", nil); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if req.Unpack(b) != nil {
			return
		}
		resp := s.answer(req)
		if resp == nil {
			t.Fatal("no answer")
		}
		if resp.Id != req.Id || !resp.Response {
			t.Fatalf("answer %v does not answer %v", resp.MsgHdr, req.MsgHdr)
		}
		if _, err := resp.Pack(); err != nil {
			t.Fatalf("answer to %v does not pack: %v", req, err)
		}
	})
}
