// Package busadmin removes what vRPC left on the buses' servers: the
// streams, queues, keys and sessions of a run or a test, found by the
// names it gave them. It speaks to each server with its own client
// library, not through package rpcbus.
package busadmin

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp091 "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
)

// DeleteNATSStreams deletes the JetStream streams carrying subjects that
// match filter.
func DeleteNATSStreams(ctx context.Context, servers []string, filter string) error {
	nc, err := natsgo.Connect(strings.Join(servers, ","), natsgo.Name("vrpc-cleanup"))
	if err != nil {
		return fmt.Errorf("remove NATS streams: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("remove NATS streams: %w", err)
	}
	names := js.StreamNames(ctx, jetstream.WithStreamListSubject(filter))
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	errs := []error{names.Err()}
	for _, n := range streams {
		if err := js.DeleteStream(ctx, n); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("stream %s: %w", n, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove NATS streams (under %s): %w", filter, err)
	}
	return nil
}

// DeleteAMQPQueues deletes queues and exchange, as guest on the default
// virtual host.
func DeleteAMQPQueues(ctx context.Context, addr, exchange string, queues []string) error {
	conn, err := amqp091.DialConfig("amqp://guest:guest@"+addr+"/", amqp091.Config{
		Dial: func(network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	})
	if err != nil {
		return fmt.Errorf("remove RabbitMQ queues: %w", err)
	}
	defer conn.Close()
	var errs []error
	var ch *amqp091.Channel
	channel := func() bool {
		if ch == nil || ch.IsClosed() { // an error closes the channel
			if ch, err = conn.Channel(); err != nil {
				errs = append(errs, err)
				return false
			}
		}
		return true
	}
	for _, q := range queues {
		if !channel() {
			break
		}
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			errs = append(errs, fmt.Errorf("queue %s: %w", q, err))
		}
	}
	if channel() {
		if err := ch.ExchangeDelete(exchange, false, false); err != nil {
			errs = append(errs, fmt.Errorf("exchange %s: %w", exchange, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove RabbitMQ queues: %w", err)
	}
	return nil
}

// DeleteRedisKeys deletes every key starting with prefix.
func DeleteRedisKeys(ctx context.Context, addr, prefix string) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr, DisableIdentity: true})
	defer c.Close()
	var keys []string
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("remove Redis keys (%s*): %w", prefix, err)
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Unlink(ctx, keys[:n]...).Err(); err != nil {
			return fmt.Errorf("remove Redis keys (%s*): %w", prefix, err)
		}
		keys = keys[n:]
	}
	return nil
}

// EndMQTTSessions ends the sessions the groups' last members left on the
// broker for the next member to adopt, and clears their retained markers
// (package mqtt keeps them under vrpc~/orphans/<group>/<client id>).
func EndMQTTSessions(ctx context.Context, addr string, groups []string) error {
	c, err := mqttConnect(ctx, addr, "vrpc-cleanup-"+strings.ToLower(rand.Text()[:12]), nil)
	if err != nil {
		return fmt.Errorf("remove MQTT sessions: %w", err)
	}
	var mu sync.Mutex
	var markers []string
	got := make(chan struct{}, 1)
	c.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		if pr.Packet.Retain && len(pr.Packet.Payload) > 0 {
			mu.Lock()
			markers = append(markers, pr.Packet.Topic)
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
		}
		return true, nil
	})
	subs := make([]paho.SubscribeOptions, len(groups))
	for i, g := range groups {
		subs[i] = paho.SubscribeOptions{Topic: "vrpc~/orphans/" + g + "/+", QoS: 1}
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
		_ = c.Disconnect(&paho.Disconnect{})
		return fmt.Errorf("remove MQTT sessions: %w", err)
	}
	// The broker sends the retained markers right after the SUBACK; wait
	// until none has come for a moment.
	for quiet := time.NewTimer(300 * time.Millisecond); ; {
		select {
		case <-got:
			quiet.Reset(300 * time.Millisecond)
			continue
		case <-quiet.C:
		case <-ctx.Done():
		}
		break
	}
	mu.Lock()
	found := markers
	mu.Unlock()
	var errs []error
	for _, topic := range found {
		id := topic[strings.LastIndexByte(topic, '/')+1:]
		// Connecting with the departed member's client id and a clean
		// start discards its session.
		zero := uint32(0)
		if s, err := mqttConnect(ctx, addr, id, &zero); err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", id, err))
		} else {
			_ = s.Disconnect(&paho.Disconnect{})
		}
		if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true}); err != nil {
			errs = append(errs, fmt.Errorf("marker %s: %w", topic, err))
		}
	}
	_ = c.Disconnect(&paho.Disconnect{})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove MQTT sessions: %w", err)
	}
	return nil
}

// mqttConnect opens an MQTT 5 connection with a clean start; expiry, if
// set, is its session expiry interval.
func mqttConnect(ctx context.Context, addr, clientID string, expiry *uint32) (*paho.Client, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: clientID, Conn: conn})
	cp := &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30}
	if expiry != nil {
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: expiry}
	}
	if _, err := c.Connect(ctx, cp); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}
