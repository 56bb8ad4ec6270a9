package vrpc

import (
	"fmt"

	"github.com/nextpkg/vrpc/internal/settings"
)

// TargetSettings are the keys of targets.<name>.settings.
type TargetSettings struct {
	// MaxRetries retries a call that failed with UNAVAILABLE, with
	// exponential backoff, within the call's deadline. gRPC returns
	// UNAVAILABLE when it could not reach the target, so the target has not
	// executed such a call.
	MaxRetries int `json:"max_retries"`
	// DescriptorSet is a file holding the target's compiled descriptors
	// (protoc --descriptor_set_out --include_imports), used instead of its
	// server reflection to resolve short method names and transcode JSON.
	DescriptorSet string `json:"descriptor_set"`
}

// ParseTargetSettings decodes and checks targets.<name>.settings.
func ParseTargetSettings(name string, m map[string]any) (TargetSettings, error) {
	var s TargetSettings
	prefix := "targets." + name + ".settings"
	if err := settings.Decode(prefix, m, &s); err != nil {
		return s, err
	}
	if s.MaxRetries < 0 || s.MaxRetries > 4 {
		return s, fmt.Errorf("%s.max_retries %d: must be 0 to 4 (gRPC allows at most 5 attempts)", prefix, s.MaxRetries)
	}
	return s, nil
}
