package vgateway

import (
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/codec"
)

// inFlight counts the bytes the gateway holds for its calls, bounded by
// max_in_flight_bytes.
type inFlight struct {
	max  int64
	used atomic.Int64
}

// acquire counts n more bytes unless that would go over the max.
func (f *inFlight) acquire(n int) bool {
	for {
		cur := f.used.Load()
		if cur+int64(n) > f.max {
			return false
		}
		if f.used.CompareAndSwap(cur, cur+int64(n)) {
			return true
		}
	}
}

// add counts n more bytes whatever the max: bytes already held, such as a
// reply the target has sent.
func (f *inFlight) add(n int) { f.used.Add(int64(n)) }

func (f *inFlight) release(n int) { f.used.Add(-int64(n)) }

// limit makes h count the messages of each call against
// max_in_flight_bytes, from their receipt to the call's end.
func (g *Gateway) limit(h grpc.StreamHandler) grpc.StreamHandler {
	return func(srv any, stream grpc.ServerStream) error {
		ls := &limitedStream{ServerStream: stream, f: &g.inFlight}
		defer ls.end()
		return h(srv, ls)
	}
}

// limitedStream counts one call's request and reply frames. Its mutex
// guards against a RecvMsg still running after the call's end (the
// handler bounds its wait for the caller's half-close from another
// goroutine).
type limitedStream struct {
	grpc.ServerStream
	f *inFlight

	mu    sync.Mutex
	held  int
	ended bool
}

func (s *limitedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	fr, ok := m.(*codec.Frame)
	if !ok {
		return nil
	}
	n := len(*fr)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil
	}
	if !s.f.acquire(n) {
		*fr = nil // not held: the call fails
		return status.Errorf(codes.ResourceExhausted,
			"vrpc gateway: the calls in flight hold %d bytes and this request has %d, over gateway.max_in_flight_bytes %d; retry later, or raise it",
			s.f.used.Load(), n, s.f.max)
	}
	s.held += n
	return nil
}

func (s *limitedStream) SendMsg(m any) error {
	if fr, ok := m.(*codec.Frame); ok {
		s.mu.Lock()
		if !s.ended {
			s.f.add(len(*fr))
			s.held += len(*fr)
		}
		s.mu.Unlock()
	}
	return s.ServerStream.SendMsg(m)
}

func (s *limitedStream) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	s.f.release(s.held)
	s.held = 0
}

// InFlightBytes returns the request and reply bytes the gateway holds for
// the calls in flight, as max_in_flight_bytes counts them.
func (g *Gateway) InFlightBytes() int { return int(g.inFlight.used.Load()) }
