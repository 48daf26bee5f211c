package imapbridge

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptedServer is an IMAP server on loopback for answers a real server
// will not give. Each connection is greeted with caps; CAPABILITY, LOGIN
// and LOGOUT are answered here, every other command goes to handle, which
// writes the whole answer (its tagged status too) and returns false to end
// the session. It serves until the test ends; it returns the address.
func scriptedServer(tb testing.TB, caps string, handle func(c net.Conn, r *bufio.Reader, tag, cmd string) bool) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	session := func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "* OK [CAPABILITY %s] scripted\r\n", caps)
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			tag, cmd, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
			switch upper := strings.ToUpper(cmd); {
			case strings.HasPrefix(upper, "CAPABILITY"):
				fmt.Fprintf(c, "* CAPABILITY %s\r\n%s OK done\r\n", caps, tag)
			case strings.HasPrefix(upper, "LOGIN"):
				fmt.Fprintf(c, "%s OK logged in\r\n", tag)
			case strings.HasPrefix(upper, "LOGOUT"):
				fmt.Fprintf(c, "* BYE bye\r\n%s OK done\r\n", tag)
				return
			default:
				if !handle(c, r, tag, cmd) {
					return
				}
			}
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { session(c) })
		}
	})
	return ln.Addr().String()
}
