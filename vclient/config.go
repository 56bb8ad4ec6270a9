package vclient

import "github.com/nextpkg/vrpc/vconfig"

// Config is the client configuration, client.yaml; see
// vconfig.ClientConfig, where it lives with the server's.
type Config = vconfig.ClientConfig

// Defaults of the client configuration; see package vconfig.
const (
	DefaultRequestTimeout  = vconfig.DefaultRequestTimeout
	DefaultConnectTimeout  = vconfig.DefaultConnectTimeout
	DefaultRetryCount      = vconfig.DefaultRetryCount
	DefaultRetryInterval   = vconfig.DefaultRetryInterval
	DefaultRequestTopic    = vconfig.DefaultRequestTopic
	DefaultResponseTopic   = vconfig.DefaultResponseTopic
	DefaultMaxMessageBytes = vconfig.DefaultMaxMessageBytes
	DefaultMaxPending      = vconfig.DefaultMaxPending
	// DefaultMaxMetadataBytes is the default max_metadata_bytes.
	DefaultMaxMetadataBytes = vconfig.DefaultMaxMetadataBytes
	// DefaultMaxPendingBytes is the default max_pending_bytes.
	DefaultMaxPendingBytes = vconfig.DefaultMaxPendingBytes
)
