package redis_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/redis"
)

// TestBrokerForms: rpc_bus.brokers takes host:port or go-redis's URL form;
// what is wrong is refused naming the entry and the accepted forms, with
// no password in the message; Addresses never shows the password.
func TestBrokerForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		broker string
		want   string // substring of the error; "" for none
		addr   string // Addresses()[0] when there is no error
	}{
		{broker: "127.0.0.1:6379", addr: "127.0.0.1:6379"},
		{broker: "redis://127.0.0.1:6379/0", addr: "127.0.0.1:6379"},
		{broker: "redis://127.0.0.1", addr: "127.0.0.1:6379"},
		{broker: "REDIS://127.0.0.1:7000", addr: "127.0.0.1:7000"},
		{broker: "redis://vrpc:s3cret@redis.example:6380/2", addr: "redis.example:6380"},
		{broker: "redis://:s3cret@redis.example", addr: "redis.example:6379"},
		{broker: "rediss://vrpc:s3cret@redis.example:6380", addr: "redis.example:6380"},
		{broker: "redis.example", want: `rpc_bus.brokers[0] "redis.example": want host:port, redis://`},
		{broker: "vrpc:s3cret@redis.example:6379", want: `rpc_bus.brokers[0] "vrpc:xxxxx@redis.example:6379": want host:port, redis://`},
		{broker: "http://vrpc:s3cret@redis.example", want: `rpc_bus.brokers[0] "http://vrpc:xxxxx@redis.example": scheme "http" is not supported (want host:port, redis://`},
		{broker: "unix:///run/redis.sock", want: `scheme "unix" is not supported`},
		{broker: "redis://vrpc:s3cret@redis.example/zero", want: `rpc_bus.brokers[0] "redis://vrpc:xxxxx@redis.example/zero": redis: invalid database number`},
		{broker: "redis://vrpc:s3cret@redis.example/0?dial_timeout=1s", want: `rpc_bus.brokers[0] "redis://vrpc:xxxxx@redis.example/0?dial_timeout=1s": URL parameters are not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.broker, func(t *testing.T) {
			t.Parallel()
			b, err := redis.New(rpcbus.Config{Type: "redis", Brokers: []string{tt.broker}})
			if tt.want != "" {
				if err == nil {
					_ = b.Close()
					t.Fatalf("New(%q) succeeded, want an error containing %q", tt.broker, tt.want)
				}
				if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("New(%q) = %v, want an error containing %q and no password", tt.broker, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q) = %v", tt.broker, err)
			}
			defer b.Close()
			if got := b.Addresses(); len(got) != 1 || got[0] != tt.addr {
				t.Fatalf("Addresses() = %q, want [%q]", got, tt.addr)
			}
			if got := b.Brokers(); strings.Contains(strings.Join(got, " "), "s3cret") {
				t.Fatalf("Brokers() = %q shows the password", got)
			}
		})
	}
}

// TestBrokerURLReachesTheServer: a URL's database and credentials are the
// ones used, against the real server.
func TestBrokerURLReachesTheServer(t *testing.T) {
	t.Parallel()
	needRedis(t)
	host := strings.TrimPrefix(addr, "redis://")
	connect := func(url string) error {
		b, err := redis.New(rpcbus.Config{Type: "redis", Brokers: []string{url}, Settings: testSettings(map[string]any{"dial_timeout": "2s"})})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		return b.Ping(ctxFor(t, 10*time.Second))
	}
	if err := connect("redis://" + host + "/0"); err != nil {
		t.Fatalf("redis://%s/0: %v", host, err)
	}
	if err := connect("redis://" + host + "/100000"); err == nil || !strings.Contains(err.Error(), "DB index is out of range") {
		t.Fatalf("redis://%s/100000 = %v, want an error about the DB index", host, err)
	}
	// rediss:// turns TLS on: the plain-text test server cannot answer a
	// TLS handshake.
	if err := connect("rediss://" + host + "/0"); err == nil {
		t.Fatalf("rediss://%s/0 to a plain-text server succeeded, want a TLS failure", host)
	}
	err := connect("redis://vrpc-no-such-user:s3cret@" + host + "/0")
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("redis:// as a user the server does not have = %v, want a WRONGPASS error without the password", err)
	}
}
