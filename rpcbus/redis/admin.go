package redis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/rpcbus"
)

var (
	_ rpcbus.Addresser = (*Bus)(nil)
	_ rpcbus.Remover   = (*Bus)(nil)
)

// Addresses returns the address of the Redis server, redacted (the
// password is a setting, not part of it).
func (b *Bus) Addresses() []string { return []string{rpcbus.RedactAddress(b.addr)} }

// Remove deletes the streams of l.Topics and, with l.Prefix, every key
// under key_prefix followed by l.Prefix (the streams of its topics and of
// inboxes named under it); the groups go with their streams.
func (b *Bus) Remove(ctx context.Context, l rpcbus.Leftovers) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	keys := make([]string, 0, len(l.Topics))
	for _, t := range l.Topics {
		keys = append(keys, b.o.key(t))
	}
	if l.Prefix != "" {
		pattern := globEscape(b.o.key(l.Prefix)) + "*"
		iter := b.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return wrap(err, "remove: listing the keys %s", pattern)
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := b.rdb.Unlink(ctx, keys[:n]...).Err(); err != nil {
			return wrap(err, "remove: deleting %d keys", n)
		}
		keys = keys[n:]
	}
	return nil
}

// globEscape quotes the characters SCAN's MATCH pattern gives a meaning.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

var _ rpcbus.GroupLister = (*Bus)(nil)

// ListGroups returns the consumer groups of topic's stream with a member
// reading it now, sorted: one idle for less than claim_idle. Redis knows a
// member only once it has been given an entry, so a group that has not
// served anything on topic is not listed; and before Redis 7.2 a member's
// idle time counts from the last entry it was given, not its last read,
// so a group counts there only while it gets work. Members that closed
// are gone; those of a process that died stop counting after claim_idle.
func (b *Bus) ListGroups(ctx context.Context, topic string) ([]string, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	key := b.o.key(topic)
	groups, err := b.rdb.XInfoGroups(ctx, key).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return nil, nil
		}
		return nil, fmt.Errorf("redis: groups of stream %s: %w", key, err)
	}
	var names []string
	for _, g := range groups {
		if strings.Contains(g.Name, ":") || g.Consumers == 0 { // the bus's own groups hold a colon
			continue
		}
		consumers, err := b.rdb.XInfoConsumers(ctx, key, g.Name).Result()
		if err != nil {
			return nil, fmt.Errorf("redis: consumers of group %s on stream %s: %w", g.Name, key, err)
		}
		if slices.ContainsFunc(consumers, func(c goredis.XInfoConsumer) bool {
			return !strings.Contains(c.Name, ":") && c.Idle < time.Duration(b.o.ClaimIdle)
		}) {
			names = append(names, g.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}
