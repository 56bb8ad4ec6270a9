//go:build !linux

package mqtt

import "net"

// quickAck is Linux's TCP_QUICKACK; elsewhere delayed acknowledgements
// stay as the system has them.
func quickAck(net.Conn) func() { return nil }
