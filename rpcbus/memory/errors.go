package memory

import "errors"

// ErrBacklogFull is returned by Publish when the topic (or inbox) already
// keeps max_backlog messages that some group has not acknowledged (or the
// inbox's handler has not taken).
var ErrBacklogFull = errors.New("memory: backlog full (raise rpc_bus.settings.max_backlog, or consume and ack faster)")
