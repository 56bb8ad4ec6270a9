package codec

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// RawName is Raw's name. It is a content-subtype of its own, which targets
// do not know: a client forcing Raw with grpc.ForceCodecV2 should also set
// grpc.CallContentSubtype("proto"), so that the target sees an ordinary
// protobuf call ("application/grpc+proto"), not "application/grpc+vrpc-raw".
const RawName = "vrpc-raw"

// Frame is a message already in its wire form.
type Frame []byte

// Raw is a gRPC codec that sends a *Frame's bytes as they are and receives
// into a *Frame without decoding. Any other type is an error, never a
// silent re-encoding.
type Raw struct{}

var _ encoding.CodecV2 = Raw{}

// Marshal returns the frame's bytes without copying.
func (Raw) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*Frame)
	if !ok {
		return nil, fmt.Errorf("codec.Raw: cannot marshal %T, want *codec.Frame", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*f)}, nil
}

// Unmarshal copies the received message into the frame.
func (Raw) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*Frame)
	if !ok {
		return fmt.Errorf("codec.Raw: cannot unmarshal into %T, want *codec.Frame", v)
	}
	*f = data.Materialize()
	return nil
}

// Name returns RawName.
func (Raw) Name() string { return RawName }
