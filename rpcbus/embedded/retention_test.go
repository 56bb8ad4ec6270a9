package embedded_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
)

// TestRetention: the broker deletes records older than retention, and the
// oldest ones of a partition past retention_bytes, on its own, so that a
// long-running embedded broker does not keep every request and reply.
func TestRetention(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		settings map[string]any
		inbox    bool // publish to a reply topic (its own retention.ms) instead
		n        int  // messages of 1 KiB published
		gone     func(start, end int64) bool
	}{
		// All of them expire.
		{"age", map[string]any{"retention": "1s"}, false, 10, func(start, end int64) bool { return start == end }},
		// 256 KiB in one partition: the oldest go, the newest stay.
		{"bytes", map[string]any{"retention": "1h", "retention_bytes": 64 << 10}, false, 256, func(start, end int64) bool {
			return start > 0 && end-start < 128
		}},
		// A reply topic sets retention.ms (reply_retention, 1h) but not
		// retention.bytes: the broker's bound applies to it too.
		{"reply_topic_bytes", map[string]any{"retention_bytes": 64 << 10}, true, 256, func(start, end int64) bool {
			return start > 0 && end-start < 128
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			set := testSettings()
			set["partitions"] = 1
			for k, v := range tc.settings {
				set[k] = v
			}
			b, err := embedded.New(rpcbus.Config{Brokers: []string{"127.0.0.1:0"}, Settings: set})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			topic := name(t, "requests")
			if tc.inbox {
				ib, err := b.Inbox(ctxFor(t, 30*time.Second), name(t, "client"), func(*rpcbus.Message) {})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = ib.Close() })
				topic = ib.Address()
			} else if err := b.CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
				t.Fatal(err)
			}
			v := bytes.Repeat([]byte("x"), 1<<10)
			for range tc.n {
				publish(t, b, topic, &rpcbus.Message{Value: v})
			}
			kc, err := kgo.NewClient(kgo.SeedBrokers(b.Brokers()...))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(kc.Close)
			adm := kadm.NewClient(kc)
			var start, end int64
			deadline := time.Now().Add(30 * time.Second)
			for {
				ctx := ctxFor(t, 10*time.Second)
				s, err1 := adm.ListStartOffsets(ctx, topic)
				e, err2 := adm.ListEndOffsets(ctx, topic)
				if err1 == nil && err2 == nil {
					so, _ := s.Lookup(topic, 0)
					eo, _ := e.Lookup(topic, 0)
					start, end = so.Offset, eo.Offset
					if end >= int64(tc.n) && tc.gone(start, end) { // an inbox adds its keepalive records
						return
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("start offset %d, end %d after 30s (errors %v, %v): retention not applied", start, end, err1, err2)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestRetentionSettings: the retention keys are checked and named.
func TestRetentionSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		settings map[string]any
		want     string
	}{
		{map[string]any{"retention": "10ms"}, "rpc_bus.settings.retention: 10ms is out of range"},
		{map[string]any{"retention_bytes": 10}, "rpc_bus.settings.retention_bytes: 10 is out of range"},
		{map[string]any{"retention": "5m", "retention_bytes": -1}, ""},
	} {
		b, err := embedded.New(rpcbus.Config{Brokers: []string{"127.0.0.1:0"}, Settings: tc.settings})
		if err == nil {
			_ = b.Close()
		}
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && !bytes.Contains([]byte(got), []byte(tc.want))) {
			t.Errorf("settings %v: error %v, want %q", tc.settings, err, tc.want)
		}
	}
}
