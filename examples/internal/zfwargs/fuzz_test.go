package zfwargs

import (
	"strings"
	"testing"
)

// FuzzParse: any command line parses or is refused, never panics, and a
// rule it accepts is whole: a valid destination, ports in order, a
// listener only on an ingress rule that steers, the families agreeing.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		strings.Join(zitiInsert, " "),
		strings.Join(zitiDelete, " "),
		"-I -c fd00::1 -m 128 -p tcp -o 0.0.0.0 -n 0 -l 80 -h 80 -t 38123 -s 3TqdLrTn2A2F9vSi5JkQpx",
		"-I -z egress -d -c 10.0.0.0 -m 8 -p udp -l 1 -h 65535",
		"-L -E", "-L -6 all", "-F -z ingress -r", "-Q", "-V",
		"-e eth0 -d", "-M all -W /tmp/x", "-X eth0 -O obj -z ingress", "-y 10.1.1.1 -d", "-B 10.0.0.0 -m 24",
		"-Irc100.64.0.2 -m32 -ptcp -l443 -h443 -t0", "--ins --dcidr=10.0.0.1 --dpre 32", "-- -L", "-c", "-z",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := Parse(strings.Fields(line))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if cmd.Op != OpInsert && cmd.Op != OpDelete {
			return
		}
		r := cmd.Rule
		if !r.Destination.IsValid() || r.Destination != r.Destination.Masked() {
			t.Fatalf("%q: destination %v", line, r.Destination)
		}
		if r.Source.IsValid() && r.Source.Addr().Is4() != r.Destination.Addr().Is4() {
			t.Fatalf("%q: source %v and destination %v of different families", line, r.Source, r.Destination)
		}
		if r.Ports.Low == 0 || r.Ports.Low > r.Ports.High {
			t.Fatalf("%q: ports %v", line, r.Ports)
		}
		if r.TProxyPort != 0 && (r.Deny || r.Egress) {
			t.Fatalf("%q: a listener on a rule that drops or is egress: %+v", line, r)
		}
	})
}
