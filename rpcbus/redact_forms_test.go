package rpcbus_test

import (
	"strings"
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
)

// TestRedactAddressForms: every broker address form the buses accept
// loses its password or token, and keeps the rest for the operator.
func TestRedactAddressForms(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"amqp://guest:s3cret@127.0.0.1:5672/", "amqp://guest:xxxxx@127.0.0.1:5672/"},
		{"amqps://vrpc:s3cret@rabbit:5671/prod%2fa", "amqps://vrpc:xxxxx@rabbit:5671/prod%2fa"},
		{"redis://:s3cret@127.0.0.1:6379/0", "redis://:xxxxx@127.0.0.1:6379/0"},
		{"rediss://vrpc:s3cret@redis:6380/2", "rediss://vrpc:xxxxx@redis:6380/2"},
		{"mqtt://vrpc:s3cret@127.0.0.1:1883", "mqtt://vrpc:xxxxx@127.0.0.1:1883"},
		{"mqtts://vrpc:s3cret@broker:8883", "mqtts://vrpc:xxxxx@broker:8883"},
		{"tcp://vrpc:s3cret@broker:1883", "tcp://vrpc:xxxxx@broker:1883"},
		{"ssl://vrpc:s3cret@broker:8883", "ssl://vrpc:xxxxx@broker:8883"},
		{"nats://vrpc:s3cret@127.0.0.1:4222", "nats://vrpc:xxxxx@127.0.0.1:4222"},
		{"nats://s3cret@127.0.0.1:4222", "nats://xxxxx@127.0.0.1:4222"},
		{"tls://vrpc:s3cret@nats:4222", "tls://vrpc:xxxxx@nats:4222"},
		{"vrpc:s3cret@kafka-1:9092", "vrpc:xxxxx@kafka-1:9092"},
		// Bad ones still lose the secret.
		{"amqp://vrpc:s3%zzcret@rabbit/", "amqp://vrpc:xxxxx@rabbit/"},
		{"redis://vrpc:s3cret@[::1", "redis://vrpc:xxxxx@[::1"},
		{"http://vrpc:s3cret@host", "http://vrpc:xxxxx@host"},
		// Nothing to hide.
		{"127.0.0.1:5672", "127.0.0.1:5672"},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1883"},
	} {
		got := rpcbus.RedactAddress(tt.in)
		if got != tt.want || strings.Contains(got, "s3") {
			t.Errorf("RedactAddress(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// The same addresses in settings and in an error.
	set := rpcbus.RedactSettings(map[string]any{"url": "rediss://vrpc:s3cret@redis:6380/2", "list": []any{"amqps://vrpc:s3cret@rabbit/"}})
	if s := strings.Join([]string{set["url"].(string), set["list"].([]any)[0].(string)}, " "); strings.Contains(s, "s3cret") {
		t.Errorf("RedactSettings left a password: %q", s)
	}
}
