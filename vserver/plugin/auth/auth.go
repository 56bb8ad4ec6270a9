package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

// Name is the plugin's name in the server configuration.
const Name = "auth"

func init() { plugin.Register(Name, New) }

// DefaultTokenHeader is the request metadata key that carries a client's
// token to the auth plugin.
const DefaultTokenHeader = "vrpc-token"

// settings are the plugin's settings (the package doc shows them in YAML).
type settings struct {
	// Header is the request metadata key holding the token. The plugin
	// removes it before the call goes on, so targets never see tokens.
	Header string `json:"header"`
	// Clients are the callers allowed in, by client id.
	Clients map[string]map[string]any `json:"clients"`
}

// clientSettings are the settings of one client, settings.clients.<id>.
type clientSettings struct {
	// Token is the client's secret (use ${ENV} in YAML).
	Token string `json:"token"`
	// Allow lists what the client may call: "*" (anything), "demo" (any
	// method of target demo), "demo/demo.Demo/*" (any method of a service)
	// or "demo/demo.Demo/Ping" (one method).
	Allow []string `json:"allow"`
}

// authClient is one client's digest of its token and its allow-list.
type authClient struct {
	digest [sha256.Size]byte
	allow  plugin.AllowList
}

// New builds the auth plugin's middleware from its settings, strictly
// (the package doc says what it checks).
func New(m map[string]any) (plugin.Middleware, error) {
	s := settings{Header: DefaultTokenHeader}
	if err := plugin.DecodeSettings(m, &s); err != nil {
		return nil, err
	}
	s.Header = strings.ToLower(s.Header)
	if s.Header == "" {
		return nil, fmt.Errorf("settings.header: empty; name the metadata key of the token, default %s", DefaultTokenHeader)
	}
	if len(s.Clients) == 0 {
		return nil, fmt.Errorf("settings.clients: none; add one per client id, e.g. clients: {billing: {token: ${BILLING_TOKEN}, allow: [demo]}}")
	}
	ids := make([]string, 0, len(s.Clients))
	for id := range s.Clients {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	clients := make(map[string]*authClient, len(s.Clients))
	for _, id := range ids {
		key := "settings.clients." + id
		var cs clientSettings
		if err := plugin.DecodeSettingsAt(key, s.Clients[id], &cs); err != nil {
			return nil, err
		}
		if cs.Token == "" {
			return nil, fmt.Errorf("%s.token: empty; give each client a secret token", key)
		}
		allow, err := plugin.ParseAllowList(cs.Allow)
		if err != nil {
			return nil, fmt.Errorf("%s.allow%w", key, err)
		}
		c := &authClient{digest: sha256.Sum256([]byte(cs.Token)), allow: allow}
		clients[id] = c
	}
	header := s.Header
	return func(next plugin.Handler) plugin.Handler {
		return func(ctx context.Context, call *plugin.Call) *plugin.Result {
			var token string
			if v := call.Metadata.Get(header); len(v) > 0 {
				token = v[0]
			}
			call.Metadata.Delete(header)
			c := clients[call.ClientID]
			// Digests compare in constant time whatever the lengths, and a
			// client id that is not configured costs the same.
			want := unknownClientDigest
			if c != nil {
				want = c.digest
			}
			got := sha256.Sum256([]byte(token))
			if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || c == nil || token == "" {
				return &plugin.Result{Status: status.Newf(codes.Unauthenticated,
					"vrpc: client %q has no valid token in the %s header", call.ClientID, header)}
			}
			if c.allow.Allows(call.Target, call.Method) {
				return next(ctx, call)
			}
			return &plugin.Result{Status: status.Newf(codes.PermissionDenied,
				"vrpc: client %q may not call %s on target %s", call.ClientID, call.Method, call.Target)}
		}
	}, nil
}

// unknownClientDigest stands in for the digest of a client id that is not
// configured; no token hashes to it in practice.
var unknownClientDigest = sha256.Sum256([]byte("vrpc: no such client"))
