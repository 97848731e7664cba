package tproxy_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"

	"github.com/zfw-go/zfw/tproxy"
)

// A TPROXY listener for TCP: the dataplane steers intercepted
// connections to its port, and each accepted connection's local address
// is the destination its client dialed. It needs CAP_NET_ADMIN.
func ExampleListenTCP() {
	ln, err := tproxy.ListenTCP(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	fmt.Println("register intercepts with TProxyPort", ln.Port())
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Println(c.RemoteAddr(), "dialed", c.LocalAddr())
		}()
	}
}

// UDP datagrams arrive grouped into sessions, one per client and
// original destination; replies leave from that destination.
func ExampleListenUDP() {
	ln, err := tproxy.ListenUDP(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"), tproxy.UDPOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	for {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer s.Close()
			buf := make([]byte, 65535)
			n, err := s.Read(buf)
			if err != nil {
				return
			}
			fmt.Println(s.ClientAddr(), "sent to", s.OriginalDst())
			s.Write(buf[:n]) // an echo, from the original destination
		}()
	}
}
