package vgateway

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/codec/schema"
	"github.com/nextpkg/vrpc/vclient"
)

// A gRPC call does not say on the wire whether its method streams: the
// gateway learns it from the target's schema (server reflection over the
// bus), once per target and method.
const (
	// maxKinds bounds the methods remembered; past it the cache starts
	// afresh (callers choose method names, so they must not grow it).
	maxKinds = 10000
	// unknownTTL is how long a method the schema could not describe (no
	// reflection, unknown method) is taken as unary before asking again.
	unknownTTL = time.Minute
	// transientTTL is that time after a failure that may pass, such as an
	// unreachable server.
	transientTTL = 5 * time.Second
	// resetEvery bounds how often a target's cached schema is dropped
	// because a method was missing from it.
	resetEvery = time.Minute
)

// methodKinds remembers which methods stream.
type methodKinds struct {
	c *vclient.Client

	mu     sync.Mutex
	m      map[kindKey]*kindEntry
	resets map[string]time.Time // by target: last schema reset
}

type kindKey struct{ target, method string }

type kindEntry struct {
	ready     chan struct{} // closed when the lookup is done
	valid     bool          // the lookup finished (not cut short by its caller)
	streaming bool
	expires   time.Time // zero: for good
}

func newMethodKinds(c *vclient.Client) *methodKinds {
	return &methodKinds{c: c, m: map[kindKey]*kindEntry{}, resets: map[string]time.Time{}}
}

// streaming reports whether method of target streams. A method the schema
// cannot describe counts as unary: the call goes on and the target judges
// it. Concurrent first calls of a method share one lookup.
func (k *methodKinds) streaming(ctx context.Context, target, method string) bool {
	key := kindKey{target, method}
	for {
		k.mu.Lock()
		e := k.m[key]
		if e != nil && e.valid && !e.expires.IsZero() && time.Now().After(e.expires) {
			delete(k.m, key)
			e = nil
		}
		if e == nil {
			if len(k.m) >= maxKinds {
				clear(k.m)
			}
			e = &kindEntry{ready: make(chan struct{})}
			k.m[key] = e
			k.mu.Unlock()
			k.lookup(ctx, target, method, key, e)
			return e.streaming
		}
		k.mu.Unlock()
		select {
		case <-e.ready:
			if e.valid {
				return e.streaming
			}
			// The caller that looked it up gave up: look again.
			if ctx.Err() != nil {
				return false
			}
		case <-ctx.Done():
			return false // the call fails with its own context's error
		}
	}
}

func (k *methodKinds) lookup(ctx context.Context, target, method string, key kindKey, e *kindEntry) {
	src := k.c.Schema(target)
	md, err := src.Method(ctx, method)
	if status.Code(err) == codes.Unimplemented && k.mayReset(target) {
		// Perhaps the target was upgraded since its schema was cached.
		src.Reset()
		md, err = src.Method(ctx, method)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	defer close(e.ready)
	switch {
	case err == nil:
		e.valid, e.streaming = true, schema.Streaming(md)
	case ctx.Err() != nil:
		if k.m[key] == e {
			delete(k.m, key) // not the method's fault: whoever comes next asks again
		}
	default:
		e.valid = true
		switch status.Code(err) {
		case codes.Unimplemented, codes.NotFound, codes.InvalidArgument:
			e.expires = time.Now().Add(unknownTTL)
		default:
			e.expires = time.Now().Add(transientTTL)
		}
	}
}

func (k *methodKinds) mayReset(target string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if time.Since(k.resets[target]) < resetEvery {
		return false
	}
	if len(k.resets) >= maxKinds {
		clear(k.resets)
	}
	k.resets[target] = time.Now()
	return true
}
