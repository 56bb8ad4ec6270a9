package vclient

import "errors"

// ErrClosed is returned when a vrpc:/// conn is dialled (ResolverBuilder)
// through a closed Client. Calls on a closed Client fail with a gRPC status
// instead, UNAVAILABLE, as calls on a closed grpc.ClientConn do.
var ErrClosed = errors.New("vclient: client closed")
