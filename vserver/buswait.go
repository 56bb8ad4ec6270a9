package vserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// pluginStartTimeout bounds the plugins' Start hooks together.
	pluginStartTimeout = 30 * time.Second
)

// reach paces the attempts to create the request topics and join the
// group while the bus is not up: each is cut short at its timeout (2s,
// doubling up to 10s; a bus that is down makes most backends wait for it
// until then, and one that comes up meanwhile lets the attempt finish),
// and a waiting server says so every 30s at most.
var reach = backoff.Reach{
	Policy:   backoff.Policy{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: true},
	First:    2 * time.Second,
	Max:      10 * time.Second,
	LogEvery: 30 * time.Second,
}

// errStopping ends a start that Stop cut short.
var errStopping = errors.New("vserver: stopped while starting")

// busWait is what the server waits for while its bus cannot be reached.
type busWait struct {
	mu       sync.Mutex
	since    time.Time // zero: not waiting
	attempts int
	last     error
}

func (w *busWait) set(since time.Time, attempts int, last error) {
	w.mu.Lock()
	w.since, w.attempts, w.last = since, attempts, last
	w.mu.Unlock()
}

// get returns the wait's state; since is zero when the server is not
// waiting.
func (w *busWait) get() (since time.Time, attempts int, last error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since, w.attempts, w.last
}

// busDesc names the bus for messages: its type and redacted addresses.
func (s *Server) busDesc() string { return rpcbus.Describe(s.cfg.RpcBus, s.bus) }

// joinBus creates the request topics and joins the consumer group, trying
// again for as long as the bus cannot be reached, until Stop
// (errStopping). An attempt cut short by its own timeout counts as one
// that could not reach the bus: no answer came.
func (s *Server) joinBus(topics []string) (rpcbus.Subscription, error) {
	quit, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-quit.Done():
		}
	}()
	w := reach.Start()
	since := w.Since
	s.busWait.set(since, 1, nil)
	defer s.busWait.set(time.Time{}, 0, nil)
	for attempt := 1; ; attempt++ {
		sub, timedOut, err := s.joinOnce(quit, topics, w.Timeout())
		if err == nil {
			if attempt > 1 {
				s.infof("vrpc server %s: reached the %s after %v (attempts: %d)", s.cfg.Name, s.busDesc(), time.Since(since).Round(time.Millisecond), attempt)
			}
			return sub, nil
		}
		if quit.Err() != nil {
			return nil, errStopping
		}
		if !rpcbus.Unreachable(err) && !timedOut {
			return nil, err
		}
		now := time.Now()
		s.busWait.set(since, attempt+1, err)
		if w.Log(now) {
			logf(s.log, slog.LevelWarn, "vrpc server %s: waiting for the %s (for %v, attempts: %d; /readyz is not ready meanwhile): %v",
				s.cfg.Name, s.busDesc(), now.Sub(since).Round(time.Second), attempt, err)
		}
		if !w.Wait(quit) {
			return nil, errStopping
		}
	}
}

// joinOnce is one attempt of joinBus; timedOut reports whether the
// attempt's own timeout ended it.
func (s *Server) joinOnce(quit context.Context, topics []string, timeout time.Duration) (_ rpcbus.Subscription, timedOut bool, _ error) {
	ctx, cancel := context.WithTimeout(quit, timeout)
	defer cancel()
	if tc, ok := s.bus.(rpcbus.TopicCreator); ok {
		if err := tc.CreateTopics(ctx, topics...); err != nil {
			return nil, ctx.Err() != nil, fmt.Errorf("vserver: create request topics %v: %w", topics, err)
		}
	}
	sub, err := s.bus.Subscribe(ctx, rpcbus.SubscribeOptions{
		Topics:         topics,
		Group:          s.cfg.Name,
		MaxInFlight:    s.cfg.MaxInFlight,
		NewGroupMaxAge: max(s.cfg.MaxRequestAge, 0),
	}, s.onDelivery)
	if err != nil {
		return nil, ctx.Err() != nil, fmt.Errorf("vserver: consume %v as group %s: %w", topics, s.cfg.Name, err)
	}
	return sub, false, nil
}

// busWaitCheck is /readyz's bus line while the server waits for its bus;
// ok is false when it does not wait.
func (s *Server) busWaitCheck(now time.Time) (c check, ok bool) {
	since, attempt, last := s.busWait.get()
	if since.IsZero() {
		return check{}, false
	}
	if last == nil {
		return check{name: "bus", err: fmt.Errorf("waiting for the %s for %v (attempt %d: creating the request topics and joining group %s)",
			s.busDesc(), now.Sub(since).Round(time.Second), attempt, s.cfg.Name)}, true
	}
	return check{name: "bus", err: fmt.Errorf("waiting for the %s for %v (attempt %d); last error: %v",
		s.busDesc(), now.Sub(since).Round(time.Second), attempt, last)}, true
}
