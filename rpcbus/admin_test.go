package rpcbus_test

import (
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
)

func TestRedactAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:9092", "127.0.0.1:9092"},
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://alice:s3cret@nats.example:4222", "nats://alice:xxxxx@nats.example:4222"},
		{"nats://s3cret-token@nats.example:4222", "nats://xxxxx@nats.example:4222"},
		{"amqps://guest:guest@rabbit:5671/vhost", "amqps://guest:xxxxx@rabbit:5671/vhost"},
		{"guest:guest@rabbit:5672", "guest:xxxxx@rabbit:5672"},
		{"token@host:1", "xxxxx@host:1"},
		{"redis://:pw@redis:6379/0", "redis://:xxxxx@redis:6379/0"},
		{"tcp://u:p%zz@broker:1883", "tcp://u:xxxxx@broker:1883"}, // not a valid URL
		{"", ""},
	} {
		if got := rpcbus.RedactAddress(tc.in); got != tc.want {
			t.Errorf("RedactAddress(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	got := rpcbus.RedactAddresses([]string{"a:b@h:1", "h:2"})
	if len(got) != 2 || got[0] != "a:xxxxx@h:1" || got[1] != "h:2" {
		t.Errorf("RedactAddresses = %q", got)
	}
}
