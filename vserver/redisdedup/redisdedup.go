// Package redisdedup is the Redis dedup store of vRPC servers, shared by
// every server that uses the same Redis and prefix: with it a request
// delivered again is answered from the store whichever server of the
// group it reaches.
//
// Importing it makes dedup.store redis available to vserver.NewServer (the
// vrpc command imports it); a program that does not use it does not link
// go-redis:
//
//	import _ "github.com/nextpkg/vrpc/vserver/redisdedup"
//
// Or build a Store on a Redis client of your own and give it to the server
// with vserver.WithDedupStore.
package redisdedup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/vconfig"
	"github.com/nextpkg/vrpc/vserver"
)

func init() { vserver.RegisterDedupStore("redis", open) }

// Store is a vserver.DedupStore in Redis, shared by every server that uses
// the same Redis and prefix. A key holds "p" while its request is being
// served and "d" followed by the encoded reply once it has been.
type Store struct {
	rdb      *redis.Client
	prefix   string
	maxReply int // 0: no bound
}

// New returns a Store on rdb, its keys prefixed with prefix; the caller
// closes rdb.
func New(rdb *redis.Client, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix}
}

// Claim implements vserver.DedupStore.
func (r *Store) Claim(ctx context.Context, key string, ttl time.Duration) ([]byte, bool, error) {
	k := r.prefix + key
	ok, err := r.rdb.SetNX(ctx, k, "p", ttl).Result()
	if err != nil {
		return nil, false, err
	}
	if ok {
		return nil, true, nil
	}
	v, err := r.rdb.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) { // expired in between: try once more
		ok, err = r.rdb.SetNX(ctx, k, "p", ttl).Result()
		return nil, ok, err
	}
	if err != nil {
		return nil, false, err
	}
	if len(v) > 0 && v[0] == 'd' {
		return v[1:], false, nil
	}
	return nil, false, nil
}

// Done implements vserver.DedupStore. A reply over dedup.max_bytes is not stored:
// the claim is dropped instead, so that a delivery of the request again is
// served again rather than left unanswered.
func (r *Store) Done(ctx context.Context, key string, reply []byte, ttl time.Duration) error {
	if r.maxReply > 0 && len(reply) > r.maxReply {
		return r.Release(ctx, key)
	}
	v := make([]byte, 1+len(reply))
	v[0] = 'd'
	copy(v[1:], reply)
	return r.rdb.Set(ctx, r.prefix+key, v, ttl).Err()
}

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == "p" then return redis.call("DEL", KEYS[1]) end return 0`)

// Release implements vserver.DedupStore.
func (r *Store) Release(ctx context.Context, key string) error {
	return releaseScript.Run(ctx, r.rdb, []string{r.prefix + key}).Err()
}

// open is the factory of dedup.store redis: a Store on a client of its
// own, which Close closes, once the Redis at dedup.redis.addr has answered.
func open(c vconfig.DedupConf) (vserver.DedupStore, error) {
	tlsConfig, err := c.Redis.TLSConfig()
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: c.Redis.Addr, Username: c.Redis.Username, Password: c.Redis.Password,
		DB: c.Redis.DB, TLSConfig: tlsConfig})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("dedup.redis.addr %s: %w", c.Redis.Addr, err)
	}
	r := New(rdb, c.Redis.Prefix)
	r.maxReply = c.MaxBytes
	return &closingStore{Store: r}, nil
}

// closingStore is a Store whose client the server owns.
type closingStore struct{ *Store }

// Close closes the Redis client.
func (c *closingStore) Close() error { return c.rdb.Close() }
