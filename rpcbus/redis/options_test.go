package redis_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/redis"
)

func TestSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, cert, key := vtest.CAFiles(t)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		settings map[string]any
		brokers  []string
		want     string // substring of the error; "" for none
		key      string // SettingError.Key, if the error is one
	}{
		{name: "none"},
		{name: "every key", settings: map[string]any{
			"key_prefix": "app1:", "db": float64(2), "username": "vrpc", "password": "secret",
			"tls": false, "tls_insecure_skip_verify": false, "max_len": float64(5000), "max_message_bytes": float64(1 << 20),
			"claim_idle": "10s", "inbox_ttl": "30s", "block": "200ms", "dial_timeout": "1s",
			"pool_size": float64(16),
		}},
		{name: "tls files", settings: map[string]any{"tls_ca_file": ca, "tls_cert_file": cert, "tls_key_file": key, "tls_server_name": "redis.local"}},
		{name: "tls alone", settings: map[string]any{"tls": true}},
		{name: "unknown key", settings: map[string]any{"max_length": float64(5)},
			want: `rpc_bus.settings.max_length: unknown key (known: block, claim_idle, db, dial_timeout, inbox_ttl, key_prefix, max_len, max_message_bytes, password, pool_size, tls, tls_ca_file, tls_cert_file, tls_insecure_skip_verify, tls_key_file, tls_server_name, username)`,
			key:  "rpc_bus.settings.max_length"},
		{name: "typo", settings: map[string]any{"claim_idel": "1s"},
			want: "rpc_bus.settings.claim_idel: unknown key (did you mean claim_idle? known: ", key: "rpc_bus.settings.claim_idel"},
		{name: "first bad key reported", settings: map[string]any{"zz": 1, "aa": 1},
			want: "rpc_bus.settings.aa: unknown key", key: "rpc_bus.settings.aa"},
		{name: "duration as number", settings: map[string]any{"claim_idle": float64(30)},
			want: `rpc_bus.settings.claim_idle: want a duration such as "100ms", got 30`, key: "rpc_bus.settings.claim_idle"},
		{name: "number as string", settings: map[string]any{"db": "zero"},
			want: `rpc_bus.settings.db: want a number, got "zero"`, key: "rpc_bus.settings.db"},
		{name: "bool as string", settings: map[string]any{"tls": "yes"},
			want: `rpc_bus.settings.tls: want true or false, got "yes"`, key: "rpc_bus.settings.tls"},
		{name: "negative db", settings: map[string]any{"db": float64(-1)},
			want: "rpc_bus.settings.db: -1 is negative", key: "rpc_bus.settings.db"},
		{name: "max_len zero", settings: map[string]any{"max_len": float64(0)},
			want: "rpc_bus.settings.max_len: 0 is out of range", key: "rpc_bus.settings.max_len"},
		{name: "max_message_bytes tiny", settings: map[string]any{"max_message_bytes": float64(10)},
			want: "rpc_bus.settings.max_message_bytes: 10 is out of range", key: "rpc_bus.settings.max_message_bytes"},
		{name: "claim_idle tiny", settings: map[string]any{"claim_idle": "1ms"},
			want: "rpc_bus.settings.claim_idle: 1ms is out of range (want 100ms to 24h0m0s)", key: "rpc_bus.settings.claim_idle"},
		{name: "inbox_ttl tiny", settings: map[string]any{"inbox_ttl": "10ms"},
			want: "rpc_bus.settings.inbox_ttl: 10ms is out of range", key: "rpc_bus.settings.inbox_ttl"},
		{name: "block zero", settings: map[string]any{"block": "0s"},
			want: "rpc_bus.settings.block: 0s is out of range", key: "rpc_bus.settings.block"},
		{name: "pool_size zero", settings: map[string]any{"pool_size": float64(0)},
			want: "rpc_bus.settings.pool_size: 0 is out of range", key: "rpc_bus.settings.pool_size"},
		{name: "key_prefix with space", settings: map[string]any{"key_prefix": "my app:"},
			want: `rpc_bus.settings.key_prefix: "my app:" contains spaces`, key: "rpc_bus.settings.key_prefix"},
		{name: "cert without key", settings: map[string]any{"tls_cert_file": cert},
			want: "rpc_bus.settings.tls_key_file: is missing: tls_cert_file needs its private key", key: "rpc_bus.settings.tls_key_file"},
		{name: "missing CA file", settings: map[string]any{"tls_ca_file": filepath.Join(dir, "nope.pem")},
			want: "rpc_bus.settings.tls_ca_file: open ", key: "rpc_bus.settings.tls_ca_file"},
		{name: "CA file not PEM", settings: map[string]any{"tls_ca_file": notPEM},
			want: "rpc_bus.settings.tls_ca_file: " + notPEM + " holds no PEM certificate", key: "rpc_bus.settings.tls_ca_file"},
		{name: "key not matching", settings: map[string]any{"tls_cert_file": cert, "tls_key_file": ca},
			want: "rpc_bus.settings.tls_cert_file: loading the key pair", key: "rpc_bus.settings.tls_cert_file"},
		{name: "two brokers", brokers: []string{"a:6379", "b:6379"},
			want: `rpc_bus.brokers ["a:6379" "b:6379"]: the redis bus takes one address`},
		{name: "broker without port", brokers: []string{"redis.local"},
			want: `rpc_bus.brokers[0] "redis.local": want host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := rpcbus.New(rpcbus.Config{Type: "redis", Brokers: tt.brokers, Settings: tt.settings})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				_ = b.Close()
				t.Fatalf("no error, want one containing %q", tt.want)
			}
			if b != nil {
				t.Errorf("New returned a bus %#v with the error", b)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			var se *redis.SettingError
			if got := errors.As(err, &se); got != (tt.key != "") || got && se.Key != tt.key {
				t.Errorf("error %#v: want a SettingError with key %q", err, tt.key)
			}
		})
	}
}

// TestSettingsReachTheServer: db, username and password are used when
// connecting (the test server has no such user, so AUTH fails and says so).
func TestSettingsReachTheServer(t *testing.T) {
	t.Parallel()
	needRedis(t)
	b := newBus(t, map[string]any{"username": "vrpc-no-such-user", "password": "secret", "dial_timeout": "2s"})
	err := b.Ping(ctxFor(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("Ping as a user the server does not have = %v, want a WRONGPASS error", err)
	}
	b = newBus(t, map[string]any{"db": float64(100000)})
	if err := b.Ping(ctxFor(t, 10*time.Second)); err == nil || !strings.Contains(err.Error(), "DB index is out of range") {
		t.Fatalf("Ping with db 100000 = %v, want an error about the DB index", err)
	}
}
