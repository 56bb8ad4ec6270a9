package kafka

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/nextpkg/vrpc/rpcbus"
)

// unreachable wraps err with rpcbus.ErrUnavailable when it means that no
// broker could be reached, or that the brokers are not ready yet: a dial
// that failed (refused, timed out, name not resolved), a connection cut,
// or a Kafka error the protocol calls retriable (no controller or leader
// yet, a coordinator loading). Other errors, such as refused
// credentials, missing ACLs or a replication factor the cluster cannot
// meet, are returned as they are: trying again would not help.
func unreachable(err error) error {
	if err == nil || errors.Is(err, rpcbus.ErrUnavailable) || !transient(err) {
		return err
	}
	return fmt.Errorf("%w (%w)", err, rpcbus.ErrUnavailable)
}

func transient(err error) bool {
	var (
		ne net.Error
		ke *kerr.Error
	)
	switch {
	case errors.As(err, &ke):
		return ke.Retriable
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return true
	}
	return false
}
