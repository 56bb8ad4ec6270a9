package vclient

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/codec/schema"
)

// Reflect sends one server reflection request to target's reflection
// service through the bus and returns its response. The outgoing metadata
// of ctx goes with it (such as a token for the server's auth plugin).
func (c *Client) Reflect(ctx context.Context, target string, req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
	payload, err := proto.Marshal(req)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "vrpc: marshal reflection request: %v", err)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	resp, err := c.Invoke(ctx, target, codec.ReflectionMethod, payload, md)
	if err != nil {
		return nil, err
	}
	out := new(rpb.ServerReflectionResponse)
	if err := proto.Unmarshal(resp.Payload, out); err != nil {
		return nil, status.Errorf(codes.Internal, "vrpc: reflection response from %s: %v", target, err)
	}
	return out, nil
}

// Schema returns the schema of target, learned through the bus from its
// server reflection and cached for the client's life.
func (c *Client) Schema(target string) *schema.Source {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.schemas[target]; ok {
		return s
	}
	if c.schemas == nil {
		c.schemas = map[string]*schema.Source{}
	}
	s := schema.NewSource(func(ctx context.Context, req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
		return c.Reflect(ctx, target, req)
	})
	c.schemas[target] = s
	return s
}
