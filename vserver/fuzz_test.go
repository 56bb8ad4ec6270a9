package vserver_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/memory"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver"
)

// ackBus is a memory bus whose subscriptions report each acknowledgement
// of a message carrying a fuzzSeqHeader, so that a test knows when the
// server is done with a message it published.
type ackBus struct {
	*memory.Bus

	mu    sync.Mutex
	acked map[string]bool
	wake  chan struct{}
}

const fuzzSeqHeader = "x-fuzz-seq"

func (b *ackBus) Subscribe(ctx context.Context, opts rpcbus.SubscribeOptions, h rpcbus.Handler) (rpcbus.Subscription, error) {
	return b.Bus.Subscribe(ctx, opts, func(d *rpcbus.Delivery) {
		seq, ok := d.Headers[fuzzSeqHeader]
		if !ok {
			h(d)
			return
		}
		h(rpcbus.NewDelivery(d.Message, func() {
			d.Ack()
			b.mu.Lock()
			b.acked[seq] = true
			b.mu.Unlock()
			select {
			case b.wake <- struct{}{}:
			default:
			}
		}))
	})
}

// waitAcked waits until the message with seq has been acknowledged.
func (b *ackBus) waitAcked(seq string, limit time.Duration) bool {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		b.mu.Lock()
		ok := b.acked[seq]
		delete(b.acked, seq)
		b.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-b.wake:
		case <-timer.C:
			return false
		}
	}
}

// fuzzDeployment is a server on the memory bus in front of the demo target,
// with a reply topic and the dead-letter topic drained, and a client to
// check that the server still serves.
type fuzzDeployment struct {
	bus    *ackBus
	srv    *vserver.Server
	client *vclient.Client
	seq    atomic.Uint64
}

const (
	fuzzRequestTopic = "vrpc.requests.demo"
	fuzzReplyTopic   = "vrpc.responses.fuzz"
)

func startFuzzDeployment(f *testing.F) *fuzzDeployment {
	f.Helper()
	busCfg := rpcbus.Config{Type: "memory", Brokers: []string{fmt.Sprintf("vserver-fuzz-%d", time.Now().UnixNano())}}
	mb, err := memory.New(busCfg)
	if err != nil {
		f.Fatal(err)
	}
	d := &fuzzDeployment{bus: &ackBus{Bus: mb, acked: map[string]bool{}, wake: make(chan struct{}, 1)}}
	f.Cleanup(func() { _ = mb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Replies to the seeds' reply address and dead letters are drained,
	// as their readers would, so that neither topic fills up.
	for _, topic := range []string{fuzzReplyTopic, fuzzRequestTopic + vserver.DeadLetterSuffix} {
		sub, err := mb.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "drain"}, func(d *rpcbus.Delivery) { d.Ack() })
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { _ = sub.Close(context.Background()) })
	}

	cfg := &vrpc.Config{
		Name:    "fuzz-server",
		Port:    -1,
		RpcBus:  busCfg,
		Targets: map[string]vrpc.Target{"demo": {Endpoint: startDemoF(f), Timeout: "5s"}},
	}
	d.srv, err = vserver.NewServer(cfg, vserver.WithBus(d.bus))
	if err != nil {
		f.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- d.srv.Start() }()
	select {
	case <-d.srv.Ready():
	case err := <-errc:
		f.Fatalf("server did not start: %v", err)
	}
	f.Cleanup(func() {
		d.srv.Stop()
		if err := <-errc; err != nil {
			f.Errorf("Start returned %v after Stop", err)
		}
	})
	if d.client, err = vclient.New(vclient.Config{ClientID: "fuzz-health", RpcBus: busCfg}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = d.client.Close() })
	return d
}

// startDemoF is startDemo for a fuzz target.
func startDemoF(f *testing.F) string {
	f.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	srv := demoserver.Serve(lis, "demo-fuzz")
	f.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// serves makes a normal call and checks its reply.
func (d *fuzzDeployment) serves() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := "still serving " + strconv.FormatUint(d.seq.Load(), 10)
	payload, _ := proto.Marshal(&demo.Request{Message: msg})
	resp, err := d.client.Call(ctx, "demo", "/demo.Demo/Ping", payload, nil)
	if err != nil {
		return err
	}
	var out demo.Response
	if err := proto.Unmarshal(resp.Payload, &out); err != nil || out.Message != msg {
		return fmt.Errorf("reply %q (%v), want %q", out.Message, err, msg)
	}
	return nil
}

// FuzzServeMessage publishes arbitrary bytes as a message on a request
// topic of a running server, as any producer with access to the bus can:
// the server must not panic (a panic in a worker ends the test binary),
// must acknowledge every message within a few seconds, and must go on
// serving normal calls (checked every 100 inputs and at the end).
func FuzzServeMessage(f *testing.F) {
	d := startFuzzDeployment(f)

	ping := func(msg string) []byte {
		b, _ := proto.Marshal(&demo.Request{Message: msg})
		return b
	}
	far := time.Now().Add(24 * time.Hour).UnixNano()
	base := func(id string) *vrpcpb.Request {
		return &vrpcpb.Request{
			Id: id, ClientId: "fuzz-seed", ReplyTo: fuzzReplyTopic, Target: "demo",
			Method: "/demo.Demo/Ping", Payload: ping("seed " + id),
			DeadlineUnixNano: far, SentUnixNano: time.Now().UnixNano(),
		}
	}
	enc := func(req *vrpcpb.Request) []byte {
		b, err := codec.EncodeRequest(req)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	plain := enc(base("plain"))
	f.Add(plain)
	withMD := base("metadata")
	withMD.Metadata = codec.MetadataToWire(metadata.Pairs("user-id", "12345", "x-multi", "a", "x-multi", "b", "x-trace-bin", "\x00\xff"))
	f.Add(enc(withMD))
	short := base("short")
	short.Method = "Ping"
	f.Add(enc(short))
	js := base("json")
	js.Method, js.Encoding, js.Payload = "demo.Demo/Ping", vrpcpb.Encoding_ENCODING_JSON, []byte(`{"message":"json seed"}`)
	js.JsonOptions = &vrpcpb.JSONOptions{UseProtoNames: true, EmitDefaults: true}
	f.Add(enc(js))
	jsShort := base("json-short")
	jsShort.Method, jsShort.Encoding, jsShort.Payload = "Ping", vrpcpb.Encoding_ENCODING_JSON, []byte(`{"message":1}`)
	f.Add(enc(jsShort))
	refl := base("reflection")
	refl.Method = codec.ReflectionMethod
	refl.Payload, _ = proto.Marshal(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	f.Add(enc(refl))
	expired := base("expired")
	expired.DeadlineUnixNano = 1
	f.Add(enc(expired))
	noDeadline := base("no-deadline")
	noDeadline.DeadlineUnixNano = 0
	f.Add(enc(noDeadline))
	unknownTarget := base("unknown-target")
	unknownTarget.Target = "nope"
	f.Add(enc(unknownTarget))
	unknownMethod := base("unknown-method")
	unknownMethod.Method = "/demo.Demo/Nope"
	f.Add(enc(unknownMethod))
	badEncoding := base("bad-encoding")
	badEncoding.Encoding = 7
	f.Add(enc(badEncoding))
	goneReply := base("gone-reply")
	goneReply.ReplyTo = "vrpc.responses.nobody"
	f.Add(enc(goneReply))
	loop := base("reply-to-requests")
	loop.ReplyTo = fuzzRequestTopic
	f.Add(enc(loop))
	v99 := base("v99")
	v99.Version = 99
	b, _ := proto.Marshal(v99)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte("\xff\xff\xff\xff not a vRPC envelope"))
	f.Add(plain[:len(plain)/2])
	f.Add(append(append([]byte{}, plain...), 0xa0, 0x06, 0x01)) // unknown field 100

	var inputs atomic.Uint64
	f.Cleanup(func() {
		// The end of the run (after the seeds, in a plain go test).
		if err := d.serves(); err != nil {
			f.Errorf("a normal call after the last input: %v", err)
		}
	})
	f.Fuzz(func(t *testing.T, value []byte) {
		seq := strconv.FormatUint(d.seq.Add(1), 10)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := d.bus.Publish(ctx, fuzzRequestTopic, &rpcbus.Message{Value: value, Headers: map[string]string{fuzzSeqHeader: seq}})
		if err != nil {
			t.Skipf("the bus refused the message: %v", err)
		}
		if !d.bus.waitAcked(seq, 10*time.Second) {
			t.Fatalf("message %x not acknowledged within 10s: the server stalled on it", value)
		}
		if inputs.Add(1)%100 == 0 {
			if err := d.serves(); err != nil {
				t.Fatalf("a normal call after input %x: %v", value, err)
			}
		}
	})
}
