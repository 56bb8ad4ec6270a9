// Package closeset keeps what a bus has open (its subscriptions and
// inboxes) so that the bus's Close can close what their owners did not.
package closeset

import (
	"sync"
	"sync/atomic"
)

// Closer is what a bus keeps in its Set: a subscription or inbox whose
// CloseNow closes it without waiting for acknowledgements, for the bus's
// Close to call when its owner did not close it.
type Closer interface{ CloseNow() }

// Set holds the open things of a bus until it is closed. The zero value is
// an empty, open set. It is safe for concurrent use.
type Set[T comparable] struct {
	closed atomic.Bool
	mu     sync.Mutex
	open   map[T]struct{}
}

// Closed reports whether Close has been called.
func (s *Set[T]) Closed() bool { return s.closed.Load() }

// Add adds c, then runs then (if not nil) while no Close can run, and
// reports true; once the set is closed it does neither and reports false.
func (s *Set[T]) Add(c T, then func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	if s.open == nil {
		s.open = make(map[T]struct{})
	}
	s.open[c] = struct{}{}
	if then != nil {
		then()
	}
	return true
}

// Remove removes c, closed by its owner.
func (s *Set[T]) Remove(c T) {
	s.mu.Lock()
	delete(s.open, c)
	s.mu.Unlock()
}

// Range calls f for each open thing, with Add, Remove and Close waiting.
func (s *Set[T]) Range(f func(T)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.open {
		f(c)
	}
}

// Close closes the set and returns what was open, for the caller to close.
// first is false if the set was closed already: the caller's Close has
// nothing more to do.
func (s *Set[T]) Close() (open []T, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil, false
	}
	open = make([]T, 0, len(s.open))
	for c := range s.open {
		open = append(open, c)
	}
	s.open = nil
	return open, true
}
