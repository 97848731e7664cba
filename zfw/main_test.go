package zfw_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/tproxy"
)

// envListen makes the test binary a helper process instead: it opens a
// TPROXY TCP listener at that address, says "ready", and holds it until
// its standard input closes (a listener another process holds, as
// OpenZiti's router holds its own).
const envListen = "ZFW_TEST_HELPER_LISTEN"

// envListenUDP makes the helper bind a plain UDP socket at that address
// as user nobody instead (what anyone on the host could open), and write
// "got" for every datagram it receives.
const envListenUDP = "ZFW_TEST_HELPER_UDP_NOBODY"

func TestMain(m *testing.M) {
	if addr := os.Getenv(envListen); addr != "" {
		os.Exit(holdListener(addr))
	}
	if addr := os.Getenv(envListenUDP); addr != "" {
		os.Exit(holdUDPAsNobody(addr))
	}
	// Then the leak check: no namespace, pin, link or goroutine left.
	os.Exit(testenv.Main(m))
}

func holdUDPAsNobody(addr string) int {
	if err := syscall.Setuid(65534); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
			fmt.Println("got")
		}
	}()
	fmt.Println("ready")
	os.Stdin.Read(make([]byte, 1))
	return 0
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
