package vserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/vconfig"
)

// RedisDedup is a DedupStore in Redis, shared by every server that uses
// the same Redis and prefix. A key holds "p" while its request is being
// served and "d" followed by the encoded reply once it has been.
type RedisDedup struct {
	rdb      *redis.Client
	prefix   string
	maxReply int // 0: no bound
}

// NewRedisDedup returns a RedisDedup on rdb; the caller closes rdb.
func NewRedisDedup(rdb *redis.Client, prefix string) *RedisDedup {
	return &RedisDedup{rdb: rdb, prefix: prefix}
}

// Claim implements DedupStore.
func (r *RedisDedup) Claim(ctx context.Context, key string, ttl time.Duration) ([]byte, bool, error) {
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

// Done implements DedupStore. A reply over dedup.max_bytes is not stored:
// the claim is dropped instead, so that a delivery of the request again is
// served again rather than left unanswered.
func (r *RedisDedup) Done(ctx context.Context, key string, reply []byte, ttl time.Duration) error {
	if r.maxReply > 0 && len(reply) > r.maxReply {
		return r.Release(ctx, key)
	}
	v := make([]byte, 1+len(reply))
	v[0] = 'd'
	copy(v[1:], reply)
	return r.rdb.Set(ctx, r.prefix+key, v, ttl).Err()
}

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == "p" then return redis.call("DEL", KEYS[1]) end return 0`)

// Release implements DedupStore.
func (r *RedisDedup) Release(ctx context.Context, key string) error {
	return releaseScript.Run(ctx, r.rdb, []string{r.prefix + key}).Err()
}

// newDedupStore builds the store dedup names; nil for none.
func newDedupStore(c vconfig.DedupConf) (DedupStore, error) {
	switch c.Store {
	case "none":
		return nil, nil
	case "redis":
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
		r := NewRedisDedup(rdb, c.Redis.Prefix)
		r.maxReply = c.MaxBytes
		return &closingRedisDedup{RedisDedup: r}, nil
	default:
		return NewMemoryDedup(c.Size, WithMaxBytes(c.MaxBytes)), nil
	}
}

// closingRedisDedup is a RedisDedup whose client the server owns.
type closingRedisDedup struct{ *RedisDedup }

func (c *closingRedisDedup) Close() error { return c.rdb.Close() }
