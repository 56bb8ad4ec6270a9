package mqtt_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/mqtt"
)

func TestDiagClose(t *testing.T) {
	for _, via := range []string{"direct", "proxy"} {
		addr := brokerAddr
		if via == "proxy" {
			addr = startProxy(t, brokerAddr).addr()
		}
		b, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: []string{addr}, Settings: testSettings()})
		if err != nil {
			t.Fatal(err)
		}
		s, err := b.Subscribe(context.Background(), rpcbus.SubscribeOptions{Topics: []string{name(t, "t")}, Group: name(t, "g")}, func(d *rpcbus.Delivery) { d.Ack() })
		if err != nil {
			t.Fatal(err)
		}
		_ = b.Publish(context.Background(), "x.y", &rpcbus.Message{Value: []byte("x")})
		fmt.Println(via, "closing at", time.Now().Unix())
		fmt.Println(s.Close(context.Background()))
		b.Close()
		time.Sleep(200 * time.Millisecond)
	}
}
