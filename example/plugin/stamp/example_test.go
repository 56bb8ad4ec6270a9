package stamp_test

import (
	"context"
	"fmt"
	"log"

	"google.golang.org/grpc/metadata"

	_ "github.com/nextpkg/vrpc/example/plugin/stamp" // registers plugin "stamp"
	"github.com/nextpkg/vrpc/vserver/plugin"
)

// Importing the package registers the plugin; a configuration then lists
// it by name, as plugin.Chain (what a server runs) shows here without a
// server: the target sees the stamped metadata, the caller the trailer.
// A caller cannot pose as another client through the client header.
func Example() {
	target := func(_ context.Context, call *plugin.Call) *plugin.Result {
		fmt.Println("target sees x-via", call.Metadata.Get("x-via"), "x-caller-id", call.Metadata.Get("x-caller-id"))
		return &plugin.Result{}
	}
	h, built, err := plugin.Chain(plugin.Env{Server: "edge-1"}, []plugin.Conf{{
		Name: "stamp", Enabled: true, Settings: map[string]any{"headers": map[string]any{"x-via": "vrpc"}},
	}}, target)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	started, err := plugin.StartAll(ctx, built)
	if err != nil {
		log.Fatal(err)
	}
	res := h(ctx, &plugin.Call{ClientID: "billing", Target: "demo", Metadata: metadata.Pairs("x-caller-id", "admin")})
	fmt.Println("caller gets x-stamped-by", res.Trailer.Get("x-stamped-by"))
	if err := plugin.StopAll(ctx, started); err != nil {
		log.Fatal(err)
	}

	// Settings are strict: a misspelt key stops the server's start-up.
	_, _, err = plugin.Chain(plugin.Env{}, []plugin.Conf{{Name: "stamp", Enabled: true, Settings: map[string]any{"header": "x"}}}, target)
	fmt.Println(err)
	// Output:
	// target sees x-via [vrpc] x-caller-id [billing]
	// caller gets x-stamped-by [edge-1]
	// plugins[0] (stamp): settings: unknown key "header" (known: client_header, headers)
}
