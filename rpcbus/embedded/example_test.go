package embedded_test

import (
	"fmt"
	"log"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
)

// Start runs a broker that other processes reach as type kafka at its
// address, and that buses of type embedded at that address share.
func ExampleStart() {
	broker, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()
	bus, err := embedded.New(rpcbus.Config{Brokers: []string{broker.Addr()}})
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()
	fmt.Println(bus.Brokers()[0] == broker.Addr())
	// Output: true
}
