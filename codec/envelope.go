package codec

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/vrpcpb"
)

// Version is the envelope version this build writes. Decoders accept every
// version up to it.
const Version = 1

var (
	marshal   = proto.MarshalOptions{}
	unmarshal = proto.UnmarshalOptions{DiscardUnknown: false}
)

// EncodeRequest sets req's version and encodes it.
func EncodeRequest(req *vrpcpb.Request) ([]byte, error) {
	req.Version = Version
	return marshal.Marshal(req)
}

// DecodeRequest decodes b and checks the fields a server needs to act on it:
// a known version, an id, a target, a method and a reply address.
func DecodeRequest(b []byte) (*vrpcpb.Request, error) {
	req := new(vrpcpb.Request)
	if err := unmarshal.Unmarshal(b, req); err != nil {
		return nil, malformed("request: %v", err)
	}
	if req.Version == 0 || req.Version > Version {
		return req, fmt.Errorf("%w: request version %d (this build reads 1 to %d)", ErrUnsupportedVersion, req.Version, Version)
	}
	switch {
	case req.Id == "":
		return req, malformed("request has no id")
	case req.ReplyTo == "":
		return req, malformed("request %s has no reply address", clipID(req.Id))
	case req.Target == "":
		return req, malformed("request %s has no target", clipID(req.Id))
	case req.Method == "":
		return req, malformed("request %s has no method", clipID(req.Id))
	}
	return req, nil
}

// EncodeResponse sets resp's version and encodes it.
func EncodeResponse(resp *vrpcpb.Response) ([]byte, error) {
	resp.Version = Version
	return marshal.Marshal(resp)
}

// DecodeResponse decodes b and checks its version and id.
func DecodeResponse(b []byte) (*vrpcpb.Response, error) {
	resp := new(vrpcpb.Response)
	if err := unmarshal.Unmarshal(b, resp); err != nil {
		return nil, malformed("response: %v", err)
	}
	if resp.Version == 0 || resp.Version > Version {
		return resp, fmt.Errorf("%w: response version %d (this build reads 1 to %d)", ErrUnsupportedVersion, resp.Version, Version)
	}
	if resp.Id == "" {
		return resp, malformed("response has no id")
	}
	return resp, nil
}

// ReflectionMethod is the gRPC server reflection method. A request for it
// carries one grpc.reflection.v1.ServerReflectionRequest; the server
// exchanges it with the target's reflection service and replies with the
// one response, so that clients and gateways learn a target's schema
// through the bus.
const ReflectionMethod = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
