package plugin_test

import (
	"context"
	"fmt"
	"log"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

// A plugin package registers its plugin under a name in init, as the
// built-in ones do; a server that imports the package has it.
func init() { plugin.Register("require-user", newRequireUser) }

// newRequireUser builds a plugin that refuses calls without a user header.
// Its settings are decoded strictly: an unknown key is an error naming it.
func newRequireUser(settings map[string]any) (plugin.Middleware, error) {
	s := struct {
		Header string `json:"header"`
	}{Header: "user-id"}
	if err := plugin.DecodeSettings(settings, &s); err != nil {
		return nil, err
	}
	header := s.Header
	return func(next plugin.Handler) plugin.Handler {
		return func(ctx context.Context, call *plugin.Call) *plugin.Result {
			if v := call.Metadata.Get(header); len(v) == 0 || v[0] == "" {
				return &plugin.Result{Status: status.Newf(codes.Unauthenticated, "%s: %s header required", call.Target, header)}
			}
			return next(ctx, call)
		}
	}, nil
}

// The server configuration enables a registered plugin by its name:
//
//	plugins:
//	  - name: require-user
//	    settings: {header: user-id}
//
// A server builds its list with Chain; a plugin's tests may do the same
// without a server, around a handler that stands for the target.
func ExampleRegister() {
	target := func(context.Context, *plugin.Call) *plugin.Result {
		return &plugin.Result{Payload: []byte("pong")}
	}
	h, _, err := plugin.Chain(plugin.Env{}, []plugin.Conf{
		{Name: "require-user", Enabled: true, Settings: map[string]any{"header": "user-id"}},
	}, target)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	res := h(ctx, &plugin.Call{Target: "demo", Metadata: metadata.Pairs("user-id", "7")})
	fmt.Println(res.Status.Code(), string(res.Payload))
	res = h(ctx, &plugin.Call{Target: "demo", Metadata: metadata.MD{}})
	fmt.Println(res.Status.Code(), res.Status.Message())

	_, _, err = plugin.Chain(plugin.Env{}, []plugin.Conf{
		{Name: "require-user", Enabled: true, Settings: map[string]any{"headr": "user-id"}},
	}, target)
	fmt.Println(err)
	// Output:
	// OK pong
	// Unauthenticated demo: user-id header required
	// plugins[0] (require-user): settings: unknown key "headr" (known: header)
}
