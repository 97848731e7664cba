package testenv

import (
	"bufio"
	"net"
	"testing"
)

func TestServeHandlesEachConnectionAndClosesIt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wait := Serve(ln.Accept, func(c net.Conn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			c.Write([]byte("echo " + line))
		}
	})
	for _, msg := range []string{"one\n", "two\n"} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		got, err := r.ReadString('\n')
		if err != nil || got != "echo "+msg {
			t.Errorf("reply %q, %v; want %q", got, err, "echo "+msg)
		}
		// The handler returned: Serve closed the connection.
		if _, err := r.ReadByte(); err == nil {
			t.Error("connection still open after its handler returned")
		}
		c.Close()
	}
	ln.Close()
	wait()
}
