package vtest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vconfig"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver"
	_ "github.com/nextpkg/vrpc/vserver/redisdedup" // dedup.store redis, for the replay across a restart
)

// RunAttacks runs an attacker's probes against a server that authenticates
// its clients, over bus: requests with no key, a wrong or unknown or
// revoked key, a tampered body, a copy of a captured request, a stale one,
// one aimed at another client's inbox, one taken to another target's
// topic, a client calling what it may not, and forged replies in a waiting
// client's inbox. None may run on the target, none unverified may be
// answered, and legitimate calls made all the while must all succeed with
// their own answers. o.Prefix names what the run uses on the bus.
func RunAttacks(t *testing.T, bus rpcbus.Config, o E2EOptions) {
	t.Helper()
	a := newAttack(t, bus, o)

	// Legitimate calls all the while: every one answered, correctly.
	ctx, cancel := context.WithCancel(context.Background())
	var legit sync.WaitGroup
	legitErr := make(chan error, 1)
	legit.Go(func() {
		conn := vclient.NewConn(a.good, "probe")
		for i := 0; ctx.Err() == nil; i++ {
			msg := fmt.Sprintf("legit-%d", i)
			cctx, ccancel := context.WithTimeout(context.Background(), waitLimit)
			resp, err := ping(cctx, conn, msg)
			ccancel()
			if err != nil || resp.Message != msg {
				legitErr <- fmt.Errorf("legitimate call %s: %v, %v", msg, resp, err)
				return
			}
			time.Sleep(time.Millisecond) // company for the probes, not a flood
		}
	})
	t.Cleanup(func() {
		cancel()
		legit.Wait()
		select {
		case err := <-legitErr:
			t.Error(err)
		default:
		}
	})

	for _, tc := range []struct {
		name string
		run  func(t *testing.T, a *attack)
	}{
		{"NoKey", attackNoKey},
		{"WrongSecret", attackWrongSecret},
		{"UnknownKey", attackUnknownKey},
		{"RevokedKey", attackRevokedKey},
		{"Tampered", attackTampered},
		{"Replay", attackReplay},
		{"Stale", attackStale},
		{"ForeignReplyAddress", attackForeignReplyAddress},
		{"OtherTargetsTopic", attackOtherTopic},
		{"NotAllowed", attackNotAllowed},
		{"ForgedReply", attackForgedReply},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, a) })
	}
}

// attack is the world of RunAttacks.
type attack struct {
	e       *e2e
	server  *vserver.Server
	probe   *probe
	good    *vclient.Client // "atk-good": may call anything
	secrets map[string]string
	raw     rpcbus.Bus // the attacker's own connection to the bus
	// captured are the requests the attacker reads off the probe's topic.
	captured chan *rpcbus.Message
}

const (
	atkGood    = "atk-good"
	atkOther   = "atk-other"
	atkLimited = "atk-limited"
)

func newAttack(t *testing.T, bus rpcbus.Config, o E2EOptions) *attack {
	t.Helper()
	e := &e2e{bus: bus, o: o}
	a := &attack{e: e, secrets: map[string]string{}, captured: make(chan *rpcbus.Message, 1024)}
	var probeAddr string
	a.probe, probeAddr = startProbe(t, "attack-probe")
	cfg := e.serverConfig("attacked", map[string]vrpc.Target{
		"probe": {Endpoint: probeAddr, Timeout: "1h"},
		"demo":  {Endpoint: StartDemo(t, demoName)},
	})
	cfg.Security.Clients = map[string]vconfig.ClientKeysConf{}
	for id, allow := range map[string][]string{
		atkGood:    {"*"},
		atkOther:   {"*"},
		atkLimited: {"probe/other.Service/*"},
	} {
		a.secrets[id] = seal.GenerateSecret()
		cfg.Security.Clients[id] = vconfig.ClientKeysConf{Allow: allow, Keys: map[string]vconfig.KeyConf{
			"k1":  {Secret: a.secrets[id]},
			"old": {Revoked: true},
		}}
	}
	a.server = StartServer(t, cfg)
	t.Cleanup(a.probe.unblock)
	a.good = a.client(t, atkGood, "k1", a.secrets[atkGood])

	raw, err := rpcbus.New(bus)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	a.raw = raw
	request, _ := e.topics()
	eavesdrop := rpcbus.SubscribeOptions{Topics: []string{request + ".probe"}, Group: o.Prefix + "-eavesdropper"}
	if o.OnSubscribe != nil {
		o.OnSubscribe(eavesdrop.Topics, eavesdrop.Group)
	}
	sub, err := raw.Subscribe(testContext(t), eavesdrop,
		func(d *rpcbus.Delivery) {
			m := d.Message
			m.Value = bytes.Clone(m.Value)
			select {
			case a.captured <- &m:
			default:
			}
			d.Ack()
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close(context.Background()) })
	return a
}

// client opens a client of the run signing with key kid and secret.
func (a *attack) client(t *testing.T, id, kid, secret string) *vclient.Client {
	t.Helper()
	cfg := a.e.clientConfig(id)
	if kid != "" {
		cfg.Security = vconfig.ClientSecurityConf{KeyID: kid, Secret: secret}
	}
	return StartClient(t, cfg)
}

// rejected returns the server's count of requests rejected for reason.
func (a *attack) rejected(t *testing.T, reason string) float64 {
	t.Helper()
	return counterValue(t, a.server.Registry(), "vrpc_server_rejected_total", "reason", reason)
}

// counterValue returns the value of the counter name{label=value} in reg.
func counterValue(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
			if label == "" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// refusedCall makes a call of msg with c that the server must drop unseen:
// it ends at its deadline, the target never runs it, and the server counts
// it under reason.
func (a *attack) refusedCall(t *testing.T, c *vclient.Client, msg, reason string) {
	t.Helper()
	before := a.rejected(t, reason)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := ping(ctx, vclient.NewConn(c, "probe"), msg)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call %q: %v, want DEADLINE_EXCEEDED (no answer to an unverified request)", msg, err)
	}
	eventually(t, "the server to count a rejection for "+reason, func() bool { return a.rejected(t, reason) > before })
	if n := a.probe.executed(msg); n != 0 {
		t.Fatalf("the target ran %q %d times", msg, n)
	}
}

func attackNoKey(t *testing.T, a *attack) {
	a.refusedCall(t, a.client(t, atkGood, "", ""), "no-key", "unsigned")
}

func attackWrongSecret(t *testing.T, a *attack) {
	a.refusedCall(t, a.client(t, atkGood, "k1", seal.GenerateSecret()), "wrong-secret", "bad_signature")
}

func attackUnknownKey(t *testing.T, a *attack) {
	a.refusedCall(t, a.client(t, atkGood, "k9", a.secrets[atkGood]), "unknown-key", "unknown_key")
	a.refusedCall(t, a.client(t, "atk-nobody", "k1", a.secrets[atkGood]), "unknown-client", "unknown_client")
}

func attackRevokedKey(t *testing.T, a *attack) {
	a.refusedCall(t, a.client(t, atkGood, "old", a.secrets[atkGood]), "revoked-key", "revoked")
}

// signed is a request of atk-good for msg on the probe, with its inbox as
// the reply address, signed with its key after change has had its way.
func (a *attack) signed(t *testing.T, msg string, change func(req *vrpcpb.Request)) (*vrpcpb.Request, []byte) {
	t.Helper()
	payload, _ := proto.Marshal(&demo.Request{Message: msg})
	now := time.Now()
	req := &vrpcpb.Request{
		Id: "atk-" + msg + "-" + fmt.Sprint(now.UnixNano()), ClientId: atkGood, ReplyTo: a.good.ReplyAddress(),
		Target: "probe", Method: "/demo.Demo/Ping", Payload: payload,
		DeadlineUnixNano: now.Add(time.Minute).UnixNano(), SentUnixNano: now.UnixNano(),
	}
	if change != nil {
		change(req)
	}
	k, err := seal.NewSecretKey("k1", []byte(a.secrets[req.ClientId]))
	if err != nil {
		t.Fatal(err)
	}
	b, err := seal.SignRequest(req, k)
	if err != nil {
		t.Fatal(err)
	}
	return req, b
}

// inject publishes raw bytes onto target's request topic, as anyone who may
// write the topic can, and waits until the server has rejected it for
// reason; the target must not have run msg.
func (a *attack) inject(t *testing.T, target string, b []byte, reason, msg string) {
	t.Helper()
	before := a.rejected(t, reason)
	request, _ := a.e.topics()
	if err := a.raw.Publish(testContext(t), request+"."+target, &rpcbus.Message{Value: b}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server to reject the injected request ("+reason+")", func() bool { return a.rejected(t, reason) > before })
	if n := a.probe.executed(msg); n != 0 {
		t.Fatalf("the target ran %q %d times", msg, n)
	}
}

func attackTampered(t *testing.T, a *attack) {
	_, b := a.signed(t, "tampered-A", nil)
	i := bytes.Index(b, []byte("tampered-A"))
	b[i+len("tampered-")] = 'B'
	a.inject(t, "probe", b, "bad_signature", "tampered-B")
	if n := a.probe.executed("tampered-A"); n != 0 {
		t.Fatalf("the target ran the untampered message %d times", n)
	}
}

// attackReplay: a request captured off the bus and published again, three
// times, runs once; the copies are answered from the dedup store, to the
// client that asked, or dropped.
func attackReplay(t *testing.T, a *attack) {
	drain(a.captured)
	ctx := testContext(t)
	if _, err := ping(ctx, vclient.NewConn(a.good, "probe"), "replayed"); err != nil {
		t.Fatal(err)
	}
	var orig *rpcbus.Message
	eventually(t, "the eavesdropper to read the request", func() bool {
		for {
			select {
			case m := <-a.captured:
				if bytes.Contains(m.Value, []byte("replayed")) {
					orig = m
					return true
				}
			default:
				return false
			}
		}
	})
	dupsBefore := a.server.Stats().Duplicates
	for range 3 {
		if err := a.raw.Publish(ctx, orig.Topic, &rpcbus.Message{Key: orig.Key, Value: orig.Value}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the server to see the three copies", func() bool { return a.server.Stats().Duplicates >= dupsBefore+3 })
	if n := a.probe.executed("replayed"); n != 1 {
		t.Fatalf("a request copied three times ran %d times, want 1", n)
	}
	// The same request under a new id is a request the client never signed.
	req, err := codec.DecodeRequest(orig.Value)
	if err != nil {
		t.Fatal(err)
	}
	req.Id += "-again"
	b, _ := codec.EncodeRequest(req) // the old signature, now not last over these bytes
	a.inject(t, "probe", b, "bad_signature", "replayed-never")
	if n := a.probe.executed("replayed"); n != 1 {
		t.Fatalf("the copy under a new id ran: %d runs", n)
	}
}

func attackStale(t *testing.T, a *attack) {
	_, b := a.signed(t, "stale", func(req *vrpcpb.Request) {
		req.SentUnixNano = time.Now().Add(-time.Hour).UnixNano()
	})
	a.inject(t, "probe", b, "stale", "stale")
	_, b = a.signed(t, "future", func(req *vrpcpb.Request) {
		req.SentUnixNano = time.Now().Add(time.Hour).UnixNano()
	})
	a.inject(t, "probe", b, "future", "future")
}

// attackForeignReplyAddress: a client with a valid key of its own asks
// for the reply at another client's inbox.
func attackForeignReplyAddress(t *testing.T, a *attack) {
	_, b := a.signed(t, "foreign", func(req *vrpcpb.Request) { req.ClientId = atkOther })
	a.inject(t, "probe", b, "foreign_reply_address", "foreign")
}

// attackOtherTopic: a request signed for one target, put on another's
// topic.
func attackOtherTopic(t *testing.T, a *attack) {
	_, b := a.signed(t, "other-topic", nil)
	a.inject(t, "demo", b, "wrong_topic", "other-topic")
}

// attackNotAllowed: a verified client calling a target or a method its
// allow-list leaves out gets PERMISSION_DENIED, and the target never runs
// the call.
func attackNotAllowed(t *testing.T, a *attack) {
	c := a.client(t, atkLimited, "k1", a.secrets[atkLimited])
	ctx := testContext(t)
	if _, err := ping(ctx, vclient.NewConn(c, "probe"), "not-allowed"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a method the allow-list leaves out: %v, want PERMISSION_DENIED", err)
	}
	if _, err := ping(ctx, vclient.NewConn(c, "demo"), "not-allowed"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a target the allow-list leaves out: %v, want PERMISSION_DENIED", err)
	}
	if n := a.probe.executed("not-allowed"); n != 0 {
		t.Fatalf("the target ran a call the allow-list leaves out %d times", n)
	}
}

// attackForgedReply: while a call waits, the attacker reads its request
// off the bus and puts forged replies in the caller's inbox: unsigned,
// signed with another client's key, and the real reply's shape with the
// signature of another call. The caller drops them, counts them, and takes
// the real reply when it comes.
func attackForgedReply(t *testing.T, a *attack) {
	drain(a.captured)
	c := a.client(t, atkGood, "k1", a.secrets[atkGood])
	done := make(chan error, 1)
	go func() {
		resp, err := ping(testContext(t), vclient.NewConn(c, "probe"), "block")
		if err == nil && resp.Message != "block" {
			err = fmt.Errorf("reply %q", resp.Message)
		}
		done <- err
	}()
	var req *vrpcpb.Request
	eventually(t, "the eavesdropper to read the waiting call's request", func() bool {
		for {
			select {
			case m := <-a.captured:
				r, err := codec.DecodeRequest(m.Value)
				// On Kafka every client of one id shares the reply
				// address: the payload tells the waiting call apart.
				if err == nil && r.ReplyTo == c.ReplyAddress() && bytes.Contains(r.Payload, []byte("block")) {
					req = r
					return true
				}
			default:
				return false
			}
		}
	})
	forged, _ := proto.Marshal(&demo.Response{Message: "forged", ServedBy: "attacker"})
	other, err := seal.NewSecretKey("k1", []byte(a.secrets[atkOther]))
	if err != nil {
		t.Fatal(err)
	}
	unsigned, _ := codec.EncodeResponse(&vrpcpb.Response{Id: req.Id, Payload: forged})
	wrongKey, _ := seal.SignResponse(&vrpcpb.Response{Id: req.Id, Payload: forged}, atkGood, other)
	forOther, _ := seal.SignResponse(&vrpcpb.Response{Id: req.Id, Payload: forged}, atkOther, other)
	for _, b := range [][]byte{unsigned, wrongKey, forOther} {
		if err := a.raw.Publish(testContext(t), req.ReplyTo, &rpcbus.Message{Value: b}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the client to drop the three forged replies", func() bool {
		return counterValue(t, prometheus.Gatherers{gatherer(c)}, "vrpc_client_forged_replies_total", "", "") >= 3
	})
	select {
	case err := <-done:
		t.Fatalf("the call ended before the real reply: %v", err)
	default:
	}
	a.probe.unblock()
	if err := <-done; err != nil {
		t.Fatalf("the waiting call: %v, want the real reply", err)
	}
}

// gatherer is a registry of c's metrics.
func gatherer(c *vclient.Client) prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	return reg
}

func drain(ch chan *rpcbus.Message) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// RunReplayAcrossRestart: a signed request captured off the bus and
// published again after the server that ran it was replaced by another of
// its group runs once, when the group shares a Redis dedup store
// (dedupRedis, the store's address; its keys are under a prefix of the
// run's own, removed at the end).
func RunReplayAcrossRestart(t *testing.T, bus rpcbus.Config, o E2EOptions, dedupRedis string) {
	t.Helper()
	e := &e2e{bus: bus, o: o}
	p, probeAddr := startProbe(t, "replay-probe")
	secret := seal.GenerateSecret()
	serverCfg := func() *vrpc.Config {
		cfg := e.serverConfig("replayed", map[string]vrpc.Target{"probe": {Endpoint: probeAddr}})
		cfg.Dedup.Store = "redis"
		cfg.Dedup.Redis.Addr = dedupRedis
		cfg.Dedup.Redis.Prefix = "vrpc-test:" + o.Prefix + ":" + fmt.Sprint(time.Now().UnixNano()) + ":"
		cfg.Security.Clients = map[string]vconfig.ClientKeysConf{
			atkGood: {Allow: []string{"*"}, Keys: map[string]vconfig.KeyConf{"k1": {Secret: secret}}},
		}
		return cfg
	}
	first := serverCfg()
	srv, err := vserver.NewServer(first)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Start() }()
	<-srv.Ready()

	cfg := e.clientConfig(atkGood)
	cfg.Security = vconfig.ClientSecurityConf{KeyID: "k1", Secret: secret}
	c := StartClient(t, cfg)
	raw, err := rpcbus.New(bus)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	request, _ := e.topics()
	captured := make(chan []byte, 1)
	eavesdrop := rpcbus.SubscribeOptions{Topics: []string{request + ".probe"}, Group: o.Prefix + "-eavesdropper"}
	if o.OnSubscribe != nil {
		o.OnSubscribe(eavesdrop.Topics, eavesdrop.Group)
	}
	sub, err := raw.Subscribe(testContext(t), eavesdrop, func(d *rpcbus.Delivery) {
		select {
		case captured <- bytes.Clone(d.Value):
		default:
		}
		d.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close(context.Background()) })

	if _, err := ping(testContext(t), vclient.NewConn(c, "probe"), "once"); err != nil {
		t.Fatal(err)
	}
	var copyOf []byte
	eventually(t, "the eavesdropper to read the request", func() bool {
		select {
		case copyOf = <-captured:
			return true
		default:
			return false
		}
	})
	srv.Stop()
	if err := <-served; err != nil {
		t.Fatal(err)
	}

	second := serverCfg()
	second.Dedup.Redis.Prefix = first.Dedup.Redis.Prefix
	replacement := StartServer(t, second)
	if err := raw.Publish(testContext(t), request+".probe", &rpcbus.Message{Value: copyOf}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replacement server to answer the copy from the store", func() bool {
		return replacement.Stats().Duplicates >= 1
	})
	if n := p.executed("once"); n != 1 {
		t.Fatalf("a request published again after a restart ran %d times, want 1", n)
	}
}
