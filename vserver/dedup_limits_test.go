package vserver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/vserver"
)

// TestMemoryDedupBytes: the store stays within WithMaxBytes however large
// the keys and replies senders make it keep, dropping the least recently
// used; an entry larger than the whole bound is not kept.
func TestMemoryDedupBytes(t *testing.T) {
	const maxBytes = 1 << 20
	ctx := context.Background()
	m := vserver.NewMemoryDedup(100000, vserver.WithMaxBytes(maxBytes))
	reply := make([]byte, 16<<10)
	for i := range 600 { // 600 requests with 64 KiB ids: 38 MiB unbounded
		k := fmt.Sprintf("c\x00%d-%s\x00r", i, strings.Repeat("i", 64<<10))
		if _, claimed, _ := m.Claim(ctx, k, time.Minute); !claimed {
			t.Fatalf("request %d not claimed", i)
		}
		_ = m.Done(ctx, k, reply, time.Minute)
		if b := m.Bytes(); b > maxBytes {
			t.Fatalf("after %d requests the store holds %d bytes, over its %d", i+1, b, maxBytes)
		}
	}
	if m.Len() == 0 || m.Len() >= 600 {
		t.Fatalf("holds %d entries: want the most recent few", m.Len())
	}
	// The most recent is kept, the first dropped.
	last := fmt.Sprintf("c\x00%d-%s\x00r", 599, strings.Repeat("i", 64<<10))
	if got, claimed, _ := m.Claim(ctx, last, time.Minute); claimed || len(got) != len(reply) {
		t.Errorf("the most recent entry was dropped (claimed %v, reply %d bytes)", claimed, len(got))
	}

	// Larger than the bound on its own: not kept, so served again.
	huge := "c\x00huge\x00r"
	m.Claim(ctx, huge, time.Minute)
	_ = m.Done(ctx, huge, make([]byte, 2*maxBytes), time.Minute)
	if _, claimed, _ := m.Claim(ctx, huge, time.Minute); !claimed {
		t.Error("a reply larger than max bytes was kept")
	}
	if b := m.Bytes(); b > maxBytes {
		t.Errorf("holds %d bytes, over its %d", b, maxBytes)
	}
}

// TestMemoryDedupDropsExpired: expired entries go as the store is used,
// without anyone claiming their keys again.
func TestMemoryDedupDropsExpired(t *testing.T) {
	ctx := context.Background()
	m := vserver.NewMemoryDedup(100000)
	for i := range 1000 {
		k := fmt.Sprintf("old-%d", i)
		m.Claim(ctx, k, time.Nanosecond)
		_ = m.Done(ctx, k, []byte("reply"), time.Nanosecond)
	}
	time.Sleep(time.Millisecond) // every entry's ttl has passed
	for i := range 1000 {        // other requests, live for a minute
		m.Claim(ctx, fmt.Sprintf("new-%d", i), time.Minute)
	}
	if n := m.Len(); n != 1000 {
		t.Errorf("holds %d entries after 1000 expired and 1000 new: want the 1000 new only", n)
	}
}
