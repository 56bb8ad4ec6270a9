package vconfig

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
)

// Defaults of the client configuration, applied by LoadFile through the
// struct tags and by ClientConfig.SetDefaults for configs built in Go
// (DefaultRetryCount by the struct tags alone: see SetDefaults).
const (
	DefaultRequestTimeout  = 30 * time.Second
	DefaultConnectTimeout  = 5 * time.Second
	DefaultRetryCount      = 3
	DefaultRetryInterval   = 100 * time.Millisecond
	DefaultRequestTopic    = "vrpc.requests"
	DefaultResponseTopic   = "vrpc.responses"
	DefaultMaxMessageBytes = 4 << 20
	DefaultMaxPending      = 100000
	// DefaultMaxMetadataBytes bounds a call's metadata: as the client sends it
	// and as a server takes it (max_metadata_bytes in both files).
	DefaultMaxMetadataBytes = 64 << 10
	// DefaultMaxPendingBytes bounds the request bytes of the pending calls
	// (waiting for the bus or for their reply).
	DefaultMaxPendingBytes = 256 << 20
)

// ClientConfig is the client configuration, client.yaml (vclient.Config
// and vrpc.ClientConfig name it too):
//
//	client_id: demo-client
//	rpc_bus: {type: kafka, brokers: [localhost:9092]}
//	timeout: {request: 30s, connect: 5s}
//	retry: {count: 3, interval: 100ms}
//	topics: {request: vrpc.requests, response: vrpc.responses}
//	services: {demo.Demo: demo}
//	max_message_bytes: 4194304
//	max_pending: 100000
//	max_metadata_bytes: 65536
//	max_pending_bytes: 268435456
//	debug: true
type ClientConfig struct {
	// ClientID identifies the caller; its replies come back at a reply
	// address the bus makes from "<topics.response>.<client_id>", one of
	// each client instance's own. Default: the host name.
	ClientID string `json:"client_id,optional"`
	// RpcBus is the bus requests are published to.
	RpcBus  rpcbus.Config `json:"rpc_bus"`
	Timeout struct {
		// Request is the deadline of a call whose context has none.
		Request time.Duration `json:"request,default=30s"`
		// Connect bounds opening the bus and the reply inbox at start:
		// how long vclient.New waits for a bus that cannot be reached
		// yet.
		Connect time.Duration `json:"connect,default=5s"`
	} `json:"timeout"`
	// Retry covers publishing a request to the bus; a request the bus has
	// accepted is never published again. Count bounds the attempts after a
	// failure the bus reports for the request; while the bus cannot be
	// reached (or has lost a request topic it had, in a restart) a call
	// tries again until its deadline, whatever Count, backing off from
	// Interval to at most a second.
	Retry struct {
		Count    int           `json:"count,default=3"`
		Interval time.Duration `json:"interval,default=100ms"`
	} `json:"retry"`
	// Topics: requests for target T go to "<request>.T"; replies come back
	// at a reply address made from "<response>.<client_id>".
	Topics struct {
		Request  string `json:",default=vrpc.requests"`
		Response string `json:",default=vrpc.responses"`
	} `json:"topics"`
	// Services maps a gRPC service name, or a prefix of one ending in "."
	// (a proto package), to the target that serves it. The interceptor uses
	// it when the call names no target otherwise.
	Services map[string]string `json:"services,optional"`
	// MaxMessageBytes bounds a request's payload; larger requests fail with
	// RESOURCE_EXHAUSTED before anything is published.
	MaxMessageBytes int `json:"max_message_bytes,default=4194304"`
	// MaxPending bounds the pending calls: those waiting for the bus to
	// take their request (all of them while it is down) and those waiting
	// for their reply. A call over it fails at once with
	// RESOURCE_EXHAUSTED naming the setting.
	MaxPending int `json:"max_pending,default=100000"`
	// MaxMetadataBytes bounds a call's outgoing metadata as the envelope
	// carries it (keys and values, binary values base64-encoded); a call
	// with more fails with RESOURCE_EXHAUSTED before anything is
	// published. Each of a reply's header and trailer may be as large.
	MaxMetadataBytes int `json:"max_metadata_bytes,default=65536"`
	// MaxPendingBytes bounds the request bytes (payload, metadata, method
	// and target) of the pending calls, which the client holds until the
	// bus has taken the request (while it is down, until the call's
	// deadline). A call that would go over it fails at once
	// with RESOURCE_EXHAUSTED rather than wait for room.
	MaxPendingBytes int `json:"max_pending_bytes,default=268435456"`
	// Debug logs every call and reply.
	Debug bool `json:"debug,optional"`
	// Security signs every request with the client's key and takes only
	// signed replies (see ClientSecurityConf); off without a key_id.
	Security ClientSecurityConf `json:"security,optional"`
}

// SetDefaults fills the zero fields of a config built in Go with the same
// defaults the YAML loader applies, except retry.count: in Go a zero count
// is a choice (publish once, never again), so it stays zero, where YAML
// that leaves the key out gets DefaultRetryCount.
func (c *ClientConfig) SetDefaults() {
	if c.ClientID == "" {
		c.ClientID = defaultClientID()
	}
	if c.RpcBus.Type == "" {
		c.RpcBus.Type = "kafka"
	}
	if c.Timeout.Request == 0 {
		c.Timeout.Request = DefaultRequestTimeout
	}
	if c.Timeout.Connect == 0 {
		c.Timeout.Connect = DefaultConnectTimeout
	}
	if c.Retry.Interval == 0 {
		c.Retry.Interval = DefaultRetryInterval
	}
	if c.Topics.Request == "" {
		c.Topics.Request = DefaultRequestTopic
	}
	if c.Topics.Response == "" {
		c.Topics.Response = DefaultResponseTopic
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxMetadataBytes == 0 {
		c.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
}

// Validate reports every invalid value, each naming its YAML key. LoadClient
// calls it after loading.
func (c *ClientConfig) Validate() error {
	errs := []error{
		rpcbus.CheckName("client_id", c.ClientID),
		rpcbus.CheckName("topics.request", c.Topics.Request),
		rpcbus.CheckName("topics.response", c.Topics.Response),
	}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Timeout.Request < 0 {
		bad("timeout.request %v: must be positive", c.Timeout.Request)
	}
	if c.Timeout.Connect < 0 {
		bad("timeout.connect %v: must be positive", c.Timeout.Connect)
	}
	if c.Retry.Count < 0 {
		bad("retry.count %d: must be 0 or more", c.Retry.Count)
	}
	if c.Retry.Interval < 0 {
		bad("retry.interval %v: must be positive", c.Retry.Interval)
	}
	for svc, target := range c.Services {
		if target == "" {
			bad("services.%s: empty target name", svc)
		}
		errs = append(errs, rpcbus.CheckName("services."+svc, target))
	}
	if c.MaxMessageBytes < 0 {
		bad("max_message_bytes %d: must be positive", c.MaxMessageBytes)
	}
	if c.MaxPending < 0 {
		bad("max_pending %d: must be positive", c.MaxPending)
	}
	if c.MaxMetadataBytes < 0 {
		bad("max_metadata_bytes %d: must be positive (default %d)", c.MaxMetadataBytes, DefaultMaxMetadataBytes)
	}
	if c.MaxPendingBytes < 0 {
		bad("max_pending_bytes %d: must be positive (default %d)", c.MaxPendingBytes, DefaultMaxPendingBytes)
	}
	// Zero stands for the default, which SetDefaults fills in later.
	msg, pend := c.MaxMessageBytes, c.MaxPendingBytes
	if msg == 0 {
		msg = DefaultMaxMessageBytes
	}
	if pend == 0 {
		pend = DefaultMaxPendingBytes
	}
	if msg > 0 && pend > 0 && pend < msg {
		bad("max_pending_bytes %d is below max_message_bytes %d: a request of the largest size could never be sent; raise max_pending_bytes to at least %d", pend, msg, msg)
	}
	if c.Security.Enabled() {
		if _, _, err := c.Security.Keys(); err != nil {
			errs = append(errs, err)
		}
	} else if c.Security.Secret != "" || c.Security.SecretFile != "" || c.Security.PrivateKey != "" || c.Security.PrivateKeyFile != "" {
		bad("security.key_id: missing; name the key the server knows this client's secret or key by")
	}
	return errors.Join(errs...)
}

func defaultClientID() string {
	host, err := os.Hostname()
	if err != nil || !rpcbus.ValidName(host) {
		return "vrpc-client"
	}
	return host
}
