package mqtt_test

import (
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
	"github.com/nextpkg/vrpc/rpcbus/mqtt"
)

// TestConformance runs the suite every backend passes against the
// machine's Mosquitto, every bus a client of its own, as processes would
// be. The MQTT bus claims every feature on Mosquitto:
//
//   - unacknowledged deliveries reach another member when theirs closes:
//     its session is handed to the group and adopted (RedeliveryTimeout 0);
//   - Mosquitto shares a group's messages round-robin, so both members get
//     work;
//   - Mosquitto answers a publish nobody subscribes to with PUBACK reason
//     code 0x10, which Publish reports as rpcbus.ErrUnknownTopic (a broker
//     that does not would need Features.UnknownTopicNotDetected);
//   - one member receives one publisher's messages in order;
//   - 1 MiB passes (Mosquitto's max_packet_size is unset here).
//
// The broker does not tell how many messages wait for a group (NoLag).
// TestMain checks for leaked goroutines.
func TestConformance(t *testing.T) {
	needBroker(t)
	t.Parallel()
	bustest.Run(t, func(t *testing.T) rpcbus.Bus {
		b, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: []string{brokerAddr}, Settings: testSettings()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, bustest.Features{NoLag: true, NoHistory: true}) // NoHistory: a new shared subscription sees nothing published before it
}
