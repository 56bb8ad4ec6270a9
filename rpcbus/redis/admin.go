package redis

import (
	"context"
	"slices"
	"strings"

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
