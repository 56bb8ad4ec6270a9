package vserver_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver"
)

// TestDeadLetters publishes messages a server cannot act on straight onto
// a request topic, as a buggy or foreign producer would. Each must be set
// aside on the dead-letter topic with its reason, answered when the caller
// can be told, counted, and acknowledged, and the server must go on
// serving.
func TestDeadLetters(t *testing.T) {
	const maxMessageSize = 64 << 10
	t.Parallel()
	busCfg := startKafka(t)
	cfg := serverConfig(busCfg, startDemo(t, "demo-1"))
	cfg.MaxMessageSize = maxMessageSize
	srv := startServer(t, cfg)
	ctx := testContext(t)
	raw := openBus(t, busCfg)

	const requestTopic = "vrpc.requests.demo"
	dlqTopic := requestTopic + vserver.DeadLetterSuffix

	// An operator's view of the dead letters: a group of its own.
	dlq := make(chan rpcbus.Message, 16)
	sub, err := raw.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{dlqTopic}, Group: "dlq-reader"},
		func(d *rpcbus.Delivery) {
			dlq <- d.Message
			d.Ack()
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sub.Close(ctx); err != nil {
			t.Errorf("dead-letter subscription Close: %v", err)
		}
	})

	// The reply address the poison requests name, as a client's.
	inboxer, ok := raw.(rpcbus.Inboxer)
	if !ok {
		t.Fatalf("%T does not implement rpcbus.Inboxer", raw)
	}
	replies := make(chan *vrpcpb.Response, 16)
	inbox, err := inboxer.Inbox(ctx, "vrpc.responses.poison-caller", func(m *rpcbus.Message) {
		resp, err := codec.DecodeResponse(m.Value)
		if err != nil {
			t.Errorf("undecodable reply on %s: %v", m.Topic, err)
			return
		}
		replies <- resp
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := inbox.Close(); err != nil {
			t.Errorf("inbox Close: %v", err)
		}
	})

	payload, err := proto.Marshal(&demo.Request{Message: "poison"})
	if err != nil {
		t.Fatal(err)
	}
	v99, err := proto.Marshal(&vrpcpb.Request{
		Version: 99, Id: "poison-v99", ReplyTo: inbox.Address(),
		Target: "demo", Method: "/demo.Demo/Ping", Payload: payload,
	})
	if err != nil {
		t.Fatal(err)
	}
	noTarget, err := codec.EncodeRequest(&vrpcpb.Request{
		Id: "poison-no-target", ReplyTo: inbox.Address(),
		Method: "/demo.Demo/Ping", Payload: payload,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Over max_message_size (set below), as a client with a larger limit
	// would send it.
	oversized, err := codec.EncodeRequest(&vrpcpb.Request{
		Id: "poison-oversized", ReplyTo: inbox.Address(), Target: "demo",
		Method: "/demo.Demo/Ping", Payload: mustMarshal(t, &demo.Request{Message: strings.Repeat("x", maxMessageSize)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	poison := []struct {
		name    string
		value   []byte
		headers map[string]string
		// the reason must say what is wrong
		reason string
		// the id of the INVALID_ARGUMENT reply the caller gets; "" if the
		// message names no one to answer
		replyID string
	}{
		{name: "garbage", value: []byte("\xff\xff\xff\xff not a vRPC envelope"), reason: "malformed",
			headers: map[string]string{"x-producer": "poison-test"}},
		{name: "version 99", value: v99, reason: "version 99", replyID: "poison-v99"},
		{name: "no target", value: noTarget, reason: "no target", replyID: "poison-no-target"},
		{name: "oversized", value: oversized, reason: "max_message_size", replyID: "poison-oversized"},
	}
	for _, p := range poison {
		if _, err := codec.DecodeRequest(p.value); err == nil && p.name != "oversized" {
			t.Fatalf("%s: the codec accepts it; not a poison message", p.name)
		}
		if err := raw.Publish(ctx, requestTopic, &rpcbus.Message{Value: p.value, Headers: p.headers}); err != nil {
			t.Fatalf("publish %s: %v", p.name, err)
		}
	}

	// Every message lands on the dead-letter topic, bytes unchanged, with
	// the reason and the topic it came from.
	letters := map[string]rpcbus.Message{}
	for len(letters) < len(poison) {
		select {
		case m := <-dlq:
			letters[string(m.Value)] = m
		case <-ctx.Done():
			t.Fatalf("%d of %d poison messages reached %s", len(letters), len(poison), dlqTopic)
		}
	}
	for _, p := range poison {
		m, ok := letters[string(p.value)]
		if !ok {
			t.Errorf("%s: not on %s (or changed on the way)", p.name, dlqTopic)
			continue
		}
		reason := m.Headers[vserver.DeadLetterReasonHeader]
		if reason == "" || !strings.Contains(reason, p.reason) {
			t.Errorf("%s: %s header %q, want one mentioning %q", p.name, vserver.DeadLetterReasonHeader, reason, p.reason)
		}
		if got := m.Headers["vrpc-dlq-topic"]; got != requestTopic {
			t.Errorf("%s: vrpc-dlq-topic header %q, want %q", p.name, got, requestTopic)
		}
		for k, v := range p.headers {
			if m.Headers[k] != v {
				t.Errorf("%s: header %s = %q on the dead letter, want %q as published", p.name, k, m.Headers[k], v)
			}
		}
	}

	// The callers that can be told are told at once, not at their deadline.
	want := map[string]bool{}
	for _, p := range poison {
		if p.replyID != "" {
			want[p.replyID] = true
		}
	}
	for len(want) > 0 {
		select {
		case resp := <-replies:
			if !want[resp.Id] {
				t.Fatalf("unexpected reply %v", resp)
			}
			delete(want, resp.Id)
			if code := codes.Code(resp.GetStatus().GetCode()); code != codes.InvalidArgument {
				t.Errorf("reply to %s: %s %q, want INVALID_ARGUMENT", resp.Id, code, resp.GetStatus().GetMessage())
			}
			if len(resp.Payload) != 0 {
				t.Errorf("reply to %s carries a payload", resp.Id)
			}
		case <-ctx.Done():
			t.Fatalf("no INVALID_ARGUMENT reply to %v", want)
		}
	}

	// Counted (before they were published to the dead-letter topic, so
	// the count is complete now).
	if got := srv.Stats().DeadLetters; got != uint64(len(poison)) {
		t.Errorf("Stats().DeadLetters = %d, want %d", got, len(poison))
	}
	if got := srv.Stats().Expired; got != 0 {
		t.Errorf("Stats().Expired = %d, want 0", got)
	}

	// And the server keeps serving.
	c := newClient(t, busCfg, "after-poison")
	resp, err := c.Call(ctx, "demo", "Ping", mustMarshal(t, &demo.Request{Message: "still serving"}), nil)
	if err != nil {
		t.Fatalf("call after the poison messages: %v", err)
	}
	var out demo.Response
	if err := proto.Unmarshal(resp.Payload, &out); err != nil {
		t.Fatal(err)
	}
	if out.Message != "still serving" || out.ServedBy != "demo-1" {
		t.Fatalf("got %v", &out)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
