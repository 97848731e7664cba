package kernels

import "testing"

func TestKernelPackageFromDepends(t *testing.T) {
	cases := []struct {
		name, out, want string
		fails           bool
	}{
		{name: "bookworm", out: "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n", want: "linux-image-6.1.0-57-amd64"},
		{
			name: "alternatives: the last",
			out:  "linux-image-amd64\n |Depends: linux-image-6.1.0-50-amd64\n  Depends: linux-image-6.1.0-57-amd64\n  Recommends: firmware-linux\n",
			want: "linux-image-6.1.0-57-amd64",
		},
		{name: "cloud is not the stock flavour", out: "x\n  Depends: linux-image-6.1.0-57-cloud-amd64\n", fails: true},
		{name: "virtual", out: "x\n  Depends: <linux-image-6.1.0-57-amd64>\n", fails: true},
		{name: "none", out: "linux-image-amd64\n", fails: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := kernelPackageFromDepends(c.out)
			if c.fails {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
