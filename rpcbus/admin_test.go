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

func TestRedactSettings(t *testing.T) {
	t.Parallel()
	in := map[string]any{
		"password":      "s3cret",
		"sasl_password": "s3cret",
		"Token":         "t0k",
		"client_secret": "abc",
		"username":      "alice@example.com",
		"creds_file":    "/etc/nats/user.creds",
		"tls_ca_file":   "/etc/ca.pem",
		"empty_token":   "",
		"partitions":    4,
		"url":           "nats://bob:pw@h:4222",
		"nested":        map[string]any{"password": "x", "peers": []any{"u:p@h:1", "h:2"}},
		"list":          []string{"amqp://g:g@r:5672"},
	}
	got := rpcbus.RedactSettings(in)
	want := map[string]any{
		"password": "xxxxx", "sasl_password": "xxxxx", "Token": "xxxxx", "client_secret": "xxxxx",
		"username": "alice@example.com", "creds_file": "/etc/nats/user.creds", "tls_ca_file": "/etc/ca.pem",
		"empty_token": "", "partitions": 4, "url": "nats://bob:xxxxx@h:4222",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("RedactSettings: %s = %v, want %v", k, got[k], w)
		}
	}
	nested := got["nested"].(map[string]any)
	if nested["password"] != "xxxxx" || nested["peers"].([]any)[0] != "u:xxxxx@h:1" || nested["peers"].([]any)[1] != "h:2" {
		t.Errorf("RedactSettings: nested = %v", nested)
	}
	if l := got["list"].([]string); l[0] != "amqp://g:xxxxx@r:5672" {
		t.Errorf("RedactSettings: list = %v", l)
	}
	if in["password"] != "s3cret" || in["nested"].(map[string]any)["password"] != "x" {
		t.Errorf("RedactSettings changed its argument: %v", in)
	}
	if rpcbus.RedactSettings(nil) != nil {
		t.Error("RedactSettings(nil) is not nil")
	}
}
