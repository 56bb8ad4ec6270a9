package amqp_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
)

// BenchmarkRoundTrip measures the raw bus round trip of vRPC: a caller
// publishes a request to a topic, a group subscriber publishes a reply to
// the caller's inbox, and the caller waits for it. Caller and server have a
// bus each, as in separate processes. Both publishes wait for the broker's
// confirmation; the request goes through a durable queue of the
// queue_type setting, the reply through the caller's exclusive queue.
// ns/op is wall time per round trip over all callers; trips/s is its
// inverse; p50 and p99 are the latencies callers saw.
//
// queue=quorum is the default; queue=classic-transient is queue_type
// classic with persistent false, where no publish waits for a disk.
func BenchmarkRoundTrip(b *testing.B) {
	for _, q := range []struct {
		name string
		set  map[string]any
	}{
		{"quorum", nil},
		{"classic-transient", map[string]any{"queue_type": "classic", "persistent": false}},
	} {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("queue=%s/callers=%d", q.name, callers), func(b *testing.B) {
				benchRoundTrip(b, callers, q.set)
			})
		}
	}
}

func benchRoundTrip(b *testing.B, callers int, set map[string]any) {
	s := newScope(b)
	bustest.BenchRoundTrip(b, s.bus(b, set), s.bus(b, set),
		bustest.BenchNames{Topic: unique("requests"), Group: "server", Inbox: unique("client")}, callers)
}

// BenchmarkRawDirectReplyTo is the reference the bus is measured
// against: a request/reply round trip with amqp091-go alone, as RabbitMQ
// tutorials do it. Callers publish on one channel, without publisher
// confirms, to a classic queue, with reply_to amq.rabbitmq.reply-to; a
// responder consumes with automatic acknowledgement and publishes the reply
// to the rewritten reply_to; replies come back on the callers' channel,
// matched by correlation id.
func BenchmarkRawDirectReplyTo(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			benchDirectReplyTo(b, callers)
		})
	}
}

func benchDirectReplyTo(b *testing.B, callers int) {
	needBroker(b)
	dial := func() *amqp091.Connection {
		c, err := amqp091.Dial("amqp://guest:guest@" + brokerAddr + "/")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		return c
	}
	channel := func(c *amqp091.Connection) *amqp091.Channel {
		ch, err := c.Channel()
		if err != nil {
			b.Fatal(err)
		}
		return ch
	}
	server, client := channel(dial()), channel(dial())
	q, err := server.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	requests, err := server.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	var responder sync.WaitGroup
	responder.Go(func() {
		for d := range requests {
			_ = server.Publish("", d.ReplyTo, false, false, amqp091.Publishing{CorrelationId: d.CorrelationId, Body: d.Body})
		}
	})
	defer func() {
		_ = server.Close()
		responder.Wait()
	}()
	replies, err := client.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	done := make([]chan struct{}, callers)
	for i := range done {
		done[i] = make(chan struct{}, 1)
	}
	var receiver sync.WaitGroup
	receiver.Go(func() {
		for d := range replies {
			if i, err := strconv.Atoi(d.CorrelationId); err == nil && i < callers {
				done[i] <- struct{}{}
			}
		}
	})
	defer func() {
		_ = client.Close()
		receiver.Wait()
	}()
	roundTrip := func(i int) {
		err := client.Publish("", q.Name, false, false, amqp091.Publishing{
			CorrelationId: strconv.Itoa(i), ReplyTo: "amq.rabbitmq.reply-to", Body: make([]byte, 40),
		})
		if err != nil {
			b.Error(err)
			return
		}
		<-done[i]
	}
	bustest.MeasureTrips(b, callers, roundTrip)
}

// BenchmarkPublish measures Publish alone, confirmed, to a group's queue,
// with its allocations.
func BenchmarkPublish(b *testing.B) {
	for _, qt := range []string{"quorum", "classic"} {
		b.Run("queue="+qt, func(b *testing.B) {
			s := newScope(b)
			set := map[string]any{"queue_type": qt}
			bus := s.bus(b, set)
			topic := unique("topic")
			sub, err := s.bus(b, set).Subscribe(context.Background(),
				rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "g"}, func(d *rpcbus.Delivery) { d.Ack() })
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close(context.Background())
			msg := &rpcbus.Message{Value: make([]byte, 100)}
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bus.Publish(context.Background(), topic, msg); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
