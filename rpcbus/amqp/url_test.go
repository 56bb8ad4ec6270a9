package amqp_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/amqp"
)

// TestBrokerURIs: rpc_bus.brokers takes host:port or an AMQP URI; the
// address shown never carries the password, and what is wrong is refused
// naming the entry and the accepted forms, without the password.
func TestBrokerURIs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		brokers []string
		want    []string // Brokers() and Addresses()
		err     string   // substring of the error, if any
	}{
		{brokers: []string{"amqp://guest:guest@127.0.0.1:5672/"}, want: []string{"127.0.0.1:5672"}},
		{brokers: []string{"amqp://rabbit"}, want: []string{"rabbit:5672"}},
		{brokers: []string{"amqps://vrpc:s3cret@rabbit/prod"}, want: []string{"rabbit:5671"}},
		{brokers: []string{"AMQPS://rabbit:6000/%2f"}, want: []string{"rabbit:6000"}},
		{brokers: []string{"amqp://[::1]:5673/", "rabbit-2"}, want: []string{"[::1]:5673", "rabbit-2:5672"}},
		{brokers: []string{"rabbit", "http://vrpc:s3cret@rabbit"},
			err: `rpc_bus.brokers[1]: "http://vrpc:xxxxx@rabbit": scheme "http" is not supported (want host:port, or amqp://[user:password@]host[:port][/vhost], or amqps://... for TLS)`},
		{brokers: []string{"amqp://vrpc:s3cret@rabbit/?heartbeat=5"}, err: `rpc_bus.brokers[0]: "amqp://vrpc:xxxxx@rabbit/?heartbeat=5": URI parameters are not supported`},
		{brokers: []string{"amqp://vrpc:s3cret@:5672/"}, err: `rpc_bus.brokers[0]: "amqp://vrpc:xxxxx@:5672/": no host`},
		{brokers: []string{"amqp://vrpc:s3cret@rabbit:99999/"}, err: `"amqp://vrpc:xxxxx@rabbit:99999/": bad port "99999"`},
		{brokers: []string{"amqp://:s3cret@rabbit/"}, err: `"amqp://:xxxxx@rabbit/": empty user name`},
		{brokers: []string{"amqp://vrpc:s3%zzcret@rabbit/"}, err: `rpc_bus.brokers[0]: "amqp://vrpc:xxxxx@rabbit/": not a URL`},
		{brokers: []string{"vrpc:s3cret@rabbit"}, err: `rpc_bus.brokers[0]: "vrpc:xxxxx@rabbit": want host:port, or amqp://`},
	} {
		b, err := amqp.New(rpcbus.Config{Brokers: tt.brokers})
		if tt.err != "" {
			if err == nil {
				_ = b.Close()
				t.Errorf("brokers %q: no error, want %q", tt.brokers, tt.err)
				continue
			}
			var se *amqp.SettingError
			if !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "s3cret") || !errors.As(err, &se) {
				t.Errorf("brokers %q: error %v, want a SettingError containing %q and no password", tt.brokers, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("brokers %q: %v", tt.brokers, err)
			continue
		}
		if got := b.Brokers(); !slices.Equal(got, tt.want) {
			t.Errorf("brokers %q: Brokers() = %q, want %q", tt.brokers, got, tt.want)
		}
		if got := b.Addresses(); !slices.Equal(got, tt.want) {
			t.Errorf("brokers %q: Addresses() = %q, want %q", tt.brokers, got, tt.want)
		}
		_ = b.Close()
	}
}

// TestBrokerURIAuth: the user, password and vhost of a URI are the ones the
// bus logs in with, on the real broker; a wrong password does not show in
// the error.
func TestBrokerURIAuth(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	ping := func(uri string, settings map[string]any) error {
		b := s.bus(t, settings, uri)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return b.Ping(ctx)
	}
	// The settings say otherwise: the URI wins.
	wrong := map[string]any{"username": "nobody", "password": "nothing", "dial_timeout": "2s", "reconnect_backoff": "100ms"}
	if err := ping("amqp://guest:guest@"+brokerAddr+"/", wrong); err != nil {
		t.Fatalf("amqp://guest:guest@%s/: %v", brokerAddr, err)
	}
	if err := ping("amqp://guest:guest@"+brokerAddr+"/%2f", wrong); err != nil {
		t.Fatalf("amqp://guest:guest@%s/%%2f: %v", brokerAddr, err)
	}
	err := ping("amqp://guest:s3cret@"+brokerAddr+"/", map[string]any{"dial_timeout": "2s"})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a wrong password in the URI: Ping = %v, want an error without the password", err)
	}
	err = ping("amqp://guest:guest@"+brokerAddr+"/vrpc-no-such-vhost", map[string]any{"dial_timeout": "2s"})
	if err == nil || !strings.Contains(err.Error(), "vrpc-no-such-vhost") {
		t.Fatalf("a vhost the broker does not have: Ping = %v, want an error naming it", err)
	}
	// amqps:// turns TLS on: the plain listener cannot answer a handshake.
	if err := ping("amqps://guest:guest@"+brokerAddr+"/", map[string]any{"dial_timeout": "2s"}); err == nil {
		t.Fatalf("amqps:// to the plain listener succeeded, want a TLS failure")
	}
}
