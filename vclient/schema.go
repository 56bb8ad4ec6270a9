package vclient

import (
	"container/list"
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
// server reflection. The client keeps the schemas of the
// MaxCachedSchemas targets it used last.
func (c *Client) Schema(target string) *schema.Source {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.schemas.get(target); s != nil {
		return s
	}
	s := schema.NewSource(func(ctx context.Context, req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
		return c.Reflect(ctx, target, req)
	})
	c.schemas.put(target, s, MaxCachedSchemas)
	return s
}

// MaxCachedSchemas bounds the schemas a client keeps: target names come
// from callers (a gateway takes them from a request header), so they must
// not grow the cache without bound.
const MaxCachedSchemas = 64

// schemaCache keeps schemas by target, evicting the least recently used.
type schemaCache struct {
	byTarget map[string]*list.Element // of *schemaEntry
	lru      list.List                // most recent at the front
}

type schemaEntry struct {
	target string
	src    *schema.Source
}

func (c *schemaCache) get(target string) *schema.Source {
	el, ok := c.byTarget[target]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*schemaEntry).src
}

func (c *schemaCache) put(target string, src *schema.Source, max int) {
	if c.byTarget == nil {
		c.byTarget = map[string]*list.Element{}
	}
	c.byTarget[target] = c.lru.PushFront(&schemaEntry{target, src})
	for c.lru.Len() > max {
		old := c.lru.Remove(c.lru.Back()).(*schemaEntry)
		delete(c.byTarget, old.target)
	}
}
