package vserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
)

// backlogMaxAge is how long the server reuses what the bus said of its
// backlog: /metrics scrapes and /debug/vrpc requests, however many, ask
// the brokers at most once in that time.
const backlogMaxAge = 5 * time.Second

// noBacklog is why the backlog of a bus without rpcbus.BacklogReporter
// is unknown.
const noBacklog = "the bus cannot count it (it does not implement rpcbus.BacklogReporter)"

// backlogCache holds the last answer of the bus, and lets one caller at a
// time ask for a new one while the others wait for it.
type backlogCache struct {
	mu     sync.Mutex
	at     time.Time // when the bus was asked; zero: never
	topics []rpcbus.TopicBacklog
	err    error
	asking chan struct{} // closed when the question in progress is answered; nil: none
}

// Backlog returns what the bus counts, for each of the server's request
// topics (Topics), of the requests its group (the server's name) has yet
// to consume: waiting on the bus, and on most buses also delivered and not
// yet acknowledged (see rpcbus.TopicBacklog for what each bus counts, and
// when it cannot tell). at is when the bus was asked: the answer is
// reused for up to five seconds, so that scrapes cannot make the server
// hammer its brokers, and a failure to ask is reused as well. It works
// before Start and while the server's consumer is reconnecting, as long
// as the bus is open.
func (s *Server) Backlog(ctx context.Context) (topics []rpcbus.TopicBacklog, at time.Time, err error) {
	br, ok := s.bus.(rpcbus.BacklogReporter)
	if !ok {
		return rpcbus.UnknownBacklog(s.cfg.Name, s.Topics(), noBacklog), time.Now(), nil
	}
	c := &s.backlog
	for {
		c.mu.Lock()
		if !c.at.IsZero() && time.Since(c.at) < backlogMaxAge {
			defer c.mu.Unlock()
			return c.topics, c.at, c.err
		}
		if wait := c.asking; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, time.Time{}, ctx.Err()
			}
		}
		done := make(chan struct{})
		c.asking = done
		c.mu.Unlock()

		now := time.Now()
		topics, err := br.Backlog(ctx, s.cfg.Name, s.Topics())
		c.mu.Lock()
		c.asking = nil
		close(done)
		if err != nil && errors.Is(ctx.Err(), context.Canceled) {
			// This caller gave up (a request cut short): not the bus's
			// answer, so not one to keep. A bus that did not answer in
			// time is one.
			c.mu.Unlock()
			return nil, time.Time{}, err
		}
		c.at, c.topics, c.err = now, topics, err
		c.mu.Unlock()
		return topics, now, err
	}
}
