package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/nextpkg/vrpc/rpcbus"
)

var (
	_ rpcbus.Addresser      = (*Bus)(nil)
	_ rpcbus.Remover        = (*Bus)(nil)
	_ rpcbus.StatusReporter = (*subscription)(nil)
)

// markersQuiet is how long Remove waits, after the last retained marker
// came, for the broker to have sent them all.
const markersQuiet = 300 * time.Millisecond

// Addresses returns the brokers' addresses, the one the bus tries first
// (the last that answered) first. The user and password are settings, not
// part of them.
func (b *Bus) Addresses() []string {
	n := len(b.brokers)
	start := int(b.nextBroker.Load())
	addrs := make([]string, 0, n)
	for i := range n {
		addrs = append(addrs, rpcbus.RedactAddress(b.brokers[(start+i)%n].addr))
	}
	return addrs
}

// Status reports one "partition" per topic, assigned while the
// subscription's own session is connected. MQTT brokers do not tell a
// client how many messages wait in a shared subscription or in a session,
// so Committed, End and Lag are always -1 (unknown): there is no consumer
// lag on this bus. Member is the own session's client id.
func (s *subscription) Status(ctx context.Context) (rpcbus.SubscriptionStatus, error) {
	st := rpcbus.SubscriptionStatus{Group: s.group, Member: s.id}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return st, rpcbus.ErrClosed
	}
	s.own.mu.Lock()
	connected := s.own.ready && s.own.cur != nil && s.own.cur.alive()
	s.own.mu.Unlock()
	for _, t := range s.topics {
		st.Partitions = append(st.Partitions, rpcbus.PartitionStatus{Topic: t, Assigned: connected, Committed: -1, End: -1, Lag: -1})
	}
	return st, ctx.Err()
}

// Remove ends the sessions that the last members of l.Groups left on the
// broker for the next member to adopt (with what they hold), and clears
// their retained markers, vrpc~/orphans/<group>/<client id>. MQTT keeps
// nothing for a topic itself, so l.Topics and l.Prefix add nothing.
func (b *Bus) Remove(ctx context.Context, l rpcbus.Leftovers) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	if len(l.Groups) == 0 {
		return nil
	}
	var (
		mu      sync.Mutex
		markers []string
		got     = make(chan struct{}, 1)
	)
	c, err := b.dial(ctx, linkConfig{
		clientID:   b.clientID(),
		cleanStart: true,
		recvMax:    maxReceiveMaximum,
		onPublish: func(c *conn, p *paho.Publish) {
			if p.QoS > 0 {
				c.ack(p.PacketID)
			}
			if p.Retain && len(p.Payload) > 0 {
				mu.Lock()
				markers = append(markers, p.Topic)
				mu.Unlock()
				select {
				case got <- struct{}{}:
				default:
				}
			}
		},
	}, true)
	if err != nil {
		return fmt.Errorf("mqtt: remove: %w", err)
	}
	zero := uint32(0)
	defer c.disconnect(&zero)
	subs := make([]paho.SubscribeOptions, len(l.Groups))
	for i, g := range l.Groups {
		subs[i] = paho.SubscribeOptions{Topic: reservedRoot + "/orphans/" + g + "/+", QoS: 1}
	}
	if err := c.subscribe(ctx, subs); err != nil {
		return fmt.Errorf("mqtt: remove: %w", err)
	}
	// The broker sends the retained markers right after the SUBACK; wait
	// until none has come for a moment.
	quiet := time.NewTimer(markersQuiet)
	defer quiet.Stop()
	for waiting := true; waiting; {
		select {
		case <-got:
			quiet.Reset(markersQuiet)
		case <-quiet.C:
			waiting = false
		case <-ctx.Done():
			return fmt.Errorf("mqtt: remove: waiting for the markers: %w", ctx.Err())
		}
	}
	mu.Lock()
	found := markers
	mu.Unlock()
	var errs []error
	for _, topic := range found {
		id := topic[strings.LastIndexByte(topic, '/')+1:]
		// Connecting with the departed member's client id, a clean start
		// and no session expiry discards its session.
		s, err := b.dial(ctx, linkConfig{clientID: id, cleanStart: true, recvMax: maxReceiveMaximum,
			onPublish: func(*conn, *paho.Publish) {}}, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", id, err))
		} else {
			s.disconnect(&zero)
		}
		if _, err := c.publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true}); err != nil {
			errs = append(errs, fmt.Errorf("marker %s: %w", topic, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mqtt: remove: %w", err)
	}
	return nil
}

var _ rpcbus.BacklogReporter = (*Bus)(nil)

// noBacklog is why Backlog cannot count.
const noBacklog = "MQTT brokers do not tell a client how many messages wait for a shared subscription or a session (Mosquitto has no such API); watch the servers' in_flight and the clients' waiting calls instead"

// Backlog reports every topic as unknown, with the reason: MQTT 5 has no
// request for the messages a broker queues for a shared subscription
// ($share/<group>/<topic>) or a session, and Mosquitto offers none of
// its own (its $SYS topics count messages broker-wide, not per
// subscription). A made-up number would be worse than none.
func (b *Bus) Backlog(ctx context.Context, group string, topics []string) ([]rpcbus.TopicBacklog, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	return rpcbus.UnknownBacklog(group, topics, noBacklog), ctx.Err()
}
