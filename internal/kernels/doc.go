// Package kernels runs the project's privileged tests on other kernels:
// it fetches a kernel package from apt, builds a busybox initramfs holding
// the test binaries (built with `go test -c`), the kernel modules they need
// and the host's iproute2, boots it under qemu-system-x86_64 (TCG, no KVM)
// and reads the results back from the serial console.
//
// The host's own kernel, whose image is usually not on disk, is tested by
// running the same steps natively; both paths write the same transcript
// format (see Marker) so one parser reads them.
//
// cmd/kernelmatrix is the `make test-kernels` entry point.
package kernels
