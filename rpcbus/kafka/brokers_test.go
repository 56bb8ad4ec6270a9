package kafka_test

import (
	"strings"
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

// TestBrokerForms: Kafka brokers are host:port (or a host, on 9092); a URL
// or user information is refused naming the entry, without the password.
func TestBrokerForms(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		broker string
		want   string // substring of the error; "" for none
	}{
		{broker: "127.0.0.1:9092"},
		{broker: "kafka-1"},
		{broker: "[::1]:9092"},
		{broker: "kafka://alice:s3cret@kafka-1:9092", want: `rpc_bus.brokers[1] "kafka://alice:xxxxx@kafka-1:9092": want host:port (the port defaults to 9092)`},
		{broker: "alice:s3cret@kafka-1:9092", want: `rpc_bus.brokers[1] "alice:xxxxx@kafka-1:9092": want host:port`},
		{broker: " ", want: `rpc_bus.brokers[1] " ": want host:port`},
	} {
		b, err := kafka.New(rpcbus.Config{Brokers: []string{"127.0.0.1:9092", tt.broker}})
		if err == nil {
			_ = b.Close()
		}
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("broker %q: %v", tt.broker, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret")):
			t.Errorf("broker %q: error %v, want one containing %q and no password", tt.broker, err, tt.want)
		}
	}
}
