package kernels

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseLdd(t *testing.T) {
	cases := []struct {
		name, out string
		want      []string
		err       string
	}{
		{
			name: "iproute2's ip",
			out: "\tlinux-vdso.so.1 (0x00007f8560a4d000)\n" +
				"\tlibbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x00007f85608ea000)\n" +
				"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f85606c1000)\n" +
				"\t/lib64/ld-linux-x86-64.so.2 (0x00007f8560a4f000)\n" +
				"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f85606c1000)\n",
			want: []string{"/lib/x86_64-linux-gnu/libbpf.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"},
		},
		{name: "static", out: "\tstatically linked\n"},
		{name: "missing library", out: "\tlibfoo.so.1 => not found\n", err: "library libfoo.so.1 not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseLdd(c.out)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}
