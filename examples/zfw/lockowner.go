package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockOwner finds, in /proc/locks, the process holding the flock on
// the pin folder.
func lockOwner(pin string) (int, bool) {
	var st unix.Stat_t
	if err := unix.Stat(pin, &st); err != nil {
		return 0, false
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	return findLockOwner(bufio.NewScanner(f), unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
}

// findLockOwner reads /proc/locks lines such as
//
//	3: FLOCK  ADVISORY  WRITE 4242 00:1e:1234 0 EOF
//
// and returns the pid of the granted FLOCK on the file major:minor:ino.
// Blocked waiters ("3: -> FLOCK ...") are skipped.
func findLockOwner(sc *bufio.Scanner, major, minor uint32, ino uint64) (int, bool) {
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, ino)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != want {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil || pid <= 0 {
			continue
		}
		return pid, true
	}
	return 0, false
}
