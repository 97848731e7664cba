package zfw_test

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"testing"

	"github.com/zfw-go/zfw/tproxy"
)

// envListen makes the test binary a helper process instead: it opens a
// TPROXY TCP listener at that address, says "ready", and holds it until
// its standard input closes (a listener another process holds, as
// OpenZiti's router holds its own).
const envListen = "ZFW_TEST_HELPER_LISTEN"

func TestMain(m *testing.M) {
	if addr := os.Getenv(envListen); addr != "" {
		os.Exit(holdListener(addr))
	}
	os.Exit(m.Run())
}

func holdListener(addr string) int {
	ln, err := tproxy.ListenTCP(context.Background(), netip.MustParseAddrPort(addr))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 64)
				n, _ := io.ReadFull(c, buf)
				c.Write(buf[:n])
				c.Close() // the server closes first
			}()
		}
	}()
	fmt.Println("ready")
	os.Stdin.Read(make([]byte, 1))
	return 0
}
