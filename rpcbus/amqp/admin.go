package amqp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nextpkg/vrpc/rpcbus"
)

var (
	_ rpcbus.Addresser = (*Bus)(nil)
	_ rpcbus.Remover   = (*Bus)(nil)
)

// Addresses returns the brokers' host:port addresses (the user and
// password are settings, not part of them).
func (b *Bus) Addresses() []string { return rpcbus.RedactAddresses(b.addrs) }

// Remove deletes the durable queue "<topic>:<group>" of each of l.Groups on
// each of l.Topics. When the bus's exchange is the run's own (its name
// starts with l.Prefix) it goes too, if no queue is bound to it any more.
// AMQP cannot list queues, so l.Prefix finds no more of them; inbox queues
// go by themselves when their inbox closes.
func (b *Bus) Remove(ctx context.Context, l rpcbus.Leftovers) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	var queues []string
	for _, t := range l.Topics {
		for _, g := range l.Groups {
			queues = append(queues, queueName(t, g))
		}
	}
	slices.Sort(queues)
	queues = slices.Compact(queues)
	err := b.withChannel(ctx, "removing queues", func(ch *amqp.Channel) error {
		for _, q := range queues {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				return fmt.Errorf("queue %s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if l.Prefix == "" || !strings.HasPrefix(b.o.Exchange, l.Prefix) {
		return nil // not the run's own exchange: others may use it
	}
	err = b.withChannel(ctx, "removing the exchange "+b.o.Exchange, func(ch *amqp.Channel) error {
		return ch.ExchangeDelete(b.o.Exchange, true, false)
	})
	var ae *amqp.Error
	if errors.As(err, &ae) && (ae.Code == amqp.PreconditionFailed || ae.Code == amqp.NotFound) {
		return nil // still in use by other queues, or gone already
	}
	return err
}
