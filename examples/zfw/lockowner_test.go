package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestFindLockOwner(t *testing.T) {
	locks := `1: POSIX  ADVISORY  WRITE 900 00:19:512 0 EOF
2: FLOCK  ADVISORY  WRITE 4242 00:1e:1234 0 EOF
2: -> FLOCK  ADVISORY  WRITE 4343 00:1e:1234 0 EOF
3: FLOCK  ADVISORY  WRITE 77 00:1e:99 0 EOF
`
	tests := []struct {
		major, minor uint32
		ino          uint64
		pid          int
		ok           bool
	}{
		{0, 0x1e, 1234, 4242, true},
		{0, 0x1e, 99, 77, true},
		{0, 0x19, 512, 0, false}, // a POSIX lock is not ours
		{0, 0x1f, 1234, 0, false},
	}
	for _, tc := range tests {
		pid, ok := findLockOwner(bufio.NewScanner(strings.NewReader(locks)), tc.major, tc.minor, tc.ino)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("owner of %x:%x:%d = %d, %v; want %d, %v", tc.major, tc.minor, tc.ino, pid, ok, tc.pid, tc.ok)
		}
	}
}
