package mqtt_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/mqtt"
)

// TestBrokerURLs: rpc_bus.brokers takes host:port or a URL with one of the
// MQTT schemes; the address shown never carries the password, and what is
// wrong is refused naming the entry and the accepted forms, without the
// password.
func TestBrokerURLs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		brokers []string
		want    []string // Addresses()
		err     string   // substring of the error, if any
	}{
		{brokers: []string{"mqtt://vrpc:s3cret@broker:1883"}, want: []string{"broker:1883"}},
		{brokers: []string{"tcp://broker:1883/"}, want: []string{"broker:1883"}},
		{brokers: []string{"mqtts://vrpc:s3cret@broker:8883", "ssl://b2:8883", "tls://[::1]:8883"}, want: []string{"broker:8883", "b2:8883", "[::1]:8883"}},
		{brokers: []string{"broker:1883", "ws://vrpc:s3cret@broker:80"},
			err: `rpc_bus.brokers[1] "ws://vrpc:xxxxx@broker:80": scheme "ws" is not supported (want host:port, or mqtt://[user:password@]host:port (also tcp://), or mqtts://... (also ssl://, tls://) for TLS)`},
		{brokers: []string{"mqtt://vrpc:s3cret@broker"}, err: `rpc_bus.brokers[0] "mqtt://vrpc:xxxxx@broker": address broker: missing port in address (want host:port`},
		{brokers: []string{"mqtt://vrpc:s3cret@broker:1883/topic"}, err: `a path or parameters are not supported`},
		{brokers: []string{"mqtt://:s3cret@broker:1883"}, err: `"mqtt://:xxxxx@broker:1883": empty user name`},
		{brokers: []string{"vrpc:s3cret@broker:1883"}, err: `rpc_bus.brokers[0] "vrpc:xxxxx@broker:1883": want host:port, or mqtt://`},
	} {
		b, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: tt.brokers})
		if tt.err != "" {
			if err == nil {
				_ = b.Close()
				t.Errorf("brokers %q: no error, want %q", tt.brokers, tt.err)
			} else if !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("brokers %q: error %v, want one containing %q and no password", tt.brokers, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("brokers %q: %v", tt.brokers, err)
			continue
		}
		if got := b.Addresses(); !slices.Equal(got, tt.want) {
			t.Errorf("brokers %q: Addresses() = %q, want %q", tt.brokers, got, tt.want)
		}
		_ = b.Close()
	}
}

// TestBrokerURLCredentials: a URL's user and password are the ones the
// CONNECT packet carries, in place of the settings'.
func TestBrokerURLCredentials(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan *packets.Connect, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if cp, err := packets.ReadPacket(c); err == nil {
			if connect, ok := cp.Content.(*packets.Connect); ok {
				got <- connect
			}
		}
	}()
	set := map[string]any{"username": "settings-user", "password": "settings-password", "connect_timeout": "1s"}
	b, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: []string{"mqtt://url-user:url%20password@" + ln.Addr().String()}, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = b.Ping(ctx) // the listener never answers CONNECT
	select {
	case c := <-got:
		if c.Username != "url-user" || string(c.Password) != "url password" {
			t.Fatalf("CONNECT carried user %q password %q, want url-user and \"url password\"", c.Username, c.Password)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no CONNECT reached the listener")
	}
}

// TestBrokerURLOnMosquitto: mqtt:// with credentials connects to the real
// broker (which admits anyone), and mqtts:// turns TLS on (which its plain
// listener cannot answer).
func TestBrokerURLOnMosquitto(t *testing.T) {
	t.Parallel()
	needBroker(t)
	ping := func(url string) error {
		b, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: []string{url}, Settings: testSettings()})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return b.Ping(ctx)
	}
	if err := ping("mqtt://vrpc:s3cret@" + brokerAddr); err != nil {
		t.Fatalf("mqtt://vrpc:xxxxx@%s: %v", brokerAddr, err)
	}
	if err := ping("mqtts://" + brokerAddr); err == nil {
		t.Fatalf("mqtts://%s (a plain listener) succeeded, want a TLS failure", brokerAddr)
	}
}
