package control

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
)

// FuzzServerAnswer: any request line gets one answer that encodes, never
// a panic; an answer without an error is of the protocol's version.
func FuzzServerAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"version":1,"op":"insert","rule":{"destination":"10.0.0.0/24","protocol":"tcp","ports":{"low":80,"high":90},"tproxyPort":4000,"serviceId":"s"}}`,
		`{"version":1,"op":"delete","match":{"destination":"10.0.0.0/24","protocol":"tcp","ports":{"low":80,"high":90}}}`,
		`{"version":1,"op":"list"}`, `{"version":1,"op":"flush","direction":"egress"}`,
		`{"version":1,"op":"set-interface","interface":"all","setting":"verbose","on":true}`,
		`{"version":1,"op":"members","list":"ddos-dport"}`, `{"version":1,"op":"set-member","list":"dnp3-fcode","member":"0x81","on":true}`,
		`{"version":1,"op":"attach","interface":"eth1","on":true}`, `{"version":2,"op":"list"}`,
		`{"version":1,"op":"insert","rule":{"destination":"zz","ports":{"low":9,"high":1}}}`, `{"op":`, `[]`, `null`,
	} {
		f.Add([]byte(seed))
	}
	fw := memFirewall(f)
	s, err := Listen(filepath.Join(f.TempDir(), "zfw.sock"), fw, ServerOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, line []byte) {
		resp := s.answer(context.Background(), line)
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("answer to %q does not encode: %v", line, err)
		}
		if resp.Error == "" && resp.Version != ProtocolVersion {
			t.Fatalf("answer to %q: version %d", line, resp.Version)
		}
	})
}
