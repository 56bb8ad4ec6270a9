package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nextpkg/vrpc/rpcbus"
)

// TestWindow checks the commit position of out-of-order acknowledgements
// without a broker: it moves only over the contiguous acknowledged prefix.
func TestWindow(t *testing.T) {
	t.Parallel()
	var ds []*rpcbus.Delivery
	s := &subscription{parts: map[topicPartition]*partition{}, h: func(d *rpcbus.Delivery) { ds = append(ds, d) }}
	k := topicPartition{"t", 0}
	// Offsets need not be dense (compaction, transaction markers).
	offsets := []int64{0, 1, 2, 5, 6, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}
	for _, o := range offsets {
		s.deliver(&kgo.Record{Topic: "t", Partition: 0, Offset: o, LeaderEpoch: 3})
	}
	p := s.parts[k]
	check := func(what string, wantCommit int64, wantInflight, wantTracked int) {
		t.Helper()
		if p.commit.Offset != wantCommit || s.inflight != wantInflight || s.tracked != wantTracked {
			t.Errorf("%s: commit %d, in flight %d, tracked %d; want %d, %d, %d",
				what, p.commit.Offset, s.inflight, s.tracked, wantCommit, wantInflight, wantTracked)
		}
	}
	check("nothing acknowledged", -1, 20, 20)
	ds[1].Ack()
	ds[2].Ack()
	check("#1 and #2 but not #0", -1, 18, 20)
	ds[0].Ack()
	check("#0 to #2", 3, 17, 17)
	ds[4].Ack()
	check("#4 but not #3", 3, 16, 17)
	ds[4].Ack() // a second Ack does nothing
	check("#4 again", 3, 16, 17)
	ds[3].Ack()
	check("#3 (offset 5) and #4 (offset 6)", 7, 15, 15)
	if p.commit.Epoch != 3 {
		t.Errorf("commit epoch %d, want the record's 3", p.commit.Epoch)
	}
	// Past the ring's first growth: acknowledge the rest backwards.
	for i := len(ds) - 1; i >= 5; i-- {
		ds[i].Ack()
	}
	check("everything", 24, 0, 0)

	// A revoked partition ignores late acknowledgements but still frees
	// their in-flight slots.
	s.deliver(&kgo.Record{Topic: "t", Partition: 0, Offset: 24})
	s.deliver(&kgo.Record{Topic: "t", Partition: 0, Offset: 25})
	s.mu.Lock()
	s.dropLocked(k)
	s.mu.Unlock()
	if s.tracked != 0 || s.inflight != 2 {
		t.Errorf("after revocation: tracked %d, in flight %d; want 0, 2", s.tracked, s.inflight)
	}
	ds[len(ds)-1].Ack()
	ds[len(ds)-2].Ack()
	if s.inflight != 0 || p.commit.Offset != 24 {
		t.Errorf("late acks: in flight %d, commit %d; want 0, unchanged 24", s.inflight, p.commit.Offset)
	}
	if s.parts[k] != nil {
		t.Error("revoked partition still tracked")
	}
}
