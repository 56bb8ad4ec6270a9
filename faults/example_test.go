package faults_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/faults"
	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/memory" // rpc_bus.type memory
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// A stream of calls through a vRPC server, checked against the target's
// counters: every call answered with its own reply and run once.
func Example() {
	tgt := &faults.Target{Name: "counted"}
	serving, err := tgt.Listen("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer serving.Stop()

	bus := rpcbus.Config{Type: "memory", Brokers: []string{"faults-example"}}
	srv, err := vserver.NewServer(&vrpc.Config{Port: -1, RpcBus: bus,
		Targets: map[string]vrpc.Target{"counted": {Endpoint: serving.Addr()}}})
	if err != nil {
		panic(err)
	}
	go func() { _ = srv.Start() }()
	defer srv.Stop()
	<-srv.Ready()
	c, err := vclient.New(vclient.Config{ClientID: "example", RpcBus: bus})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream := faults.Start(ctx, faults.Load{Name: "call", Calls: 500, Concurrency: 16}, faults.DemoCaller(c, "counted"))
	fmt.Println(faults.Check(stream.Wait(), tgt))
	// Output: calls 500: ok 500, failed 0, lost 0, wrong 0, duplicated 0, failed but executed 0
}
