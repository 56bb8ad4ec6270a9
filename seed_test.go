package vrpc_test

import (
	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vserver"
)

// seedServer is the seed design's server snippet, verbatim but for the
// final Start, which would block: it must keep compiling.
func seedServer() (*vserver.Server, error) {
	config := &vrpc.Config{
		Name: "vrpc-server",
		Host: "0.0.0.0",
		Port: 8080,
		RpcBus: rpcbus.Config{
			Type:    "kafka",
			Brokers: []string{"localhost:9092"},
		},
		Topics: struct {
			Request  string `json:",default=vrpc.requests"`
			Response string `json:",default=vrpc.responses"`
		}{
			Request:  "vrpc.requests",
			Response: "vrpc.responses",
		},
		Targets: map[string]vrpc.Target{
			"demo": {
				Endpoint: "localhost:8081",
				Timeout:  "30s",
			},
		},
	}

	server, err := vserver.NewServer(config)
	if err != nil {
		panic(err)
	}
	return server, nil
}

var _ = seedServer
