package mqtt

import (
	"net"
	"syscall"
)

// quickAck returns a function that switches delayed acknowledgements off
// on c's socket until the kernel switches them on again, or nil if c is
// not TCP. The connection's reader calls it after every read; see
// ackingReader.
func quickAck(c net.Conn) func() {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	set := func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1) }
	return func() { _ = rc.Control(set) }
}
