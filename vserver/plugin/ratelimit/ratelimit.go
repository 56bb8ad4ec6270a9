package ratelimit

import (
	"container/list"
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

// Name is the plugin's name in the server configuration.
const Name = "ratelimit"

func init() { plugin.RegisterBuilder(Name, New) }

// settings are the plugin's settings (the package doc shows them in YAML).
type settings struct {
	// PerTarget is every target's bucket unless Targets names it; PerClient
	// every client id's unless Clients names it. Absent: no limit.
	PerTarget map[string]any            `json:"per_target"`
	Targets   map[string]map[string]any `json:"targets"`
	PerClient map[string]any            `json:"per_client"`
	Clients   map[string]map[string]any `json:"clients"`
	// MaxClients bounds the client buckets held; the least recently used
	// is dropped first (and starts full again when its client returns).
	MaxClients int `json:"max_clients"`
}

// bucketSettings is one token bucket: Rate calls a second on average, up
// to Burst at once.
type bucketSettings struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
}

// decodeBucket reads the bucket at key of the settings; nil when m is.
func decodeBucket(key string, m map[string]any) (*bucketSettings, error) {
	if m == nil {
		return nil, nil
	}
	var b bucketSettings
	if err := plugin.DecodeSettingsAt(key, m, &b); err != nil {
		return nil, err
	}
	if !(b.Rate > 0) || math.IsInf(b.Rate, 0) {
		return nil, fmt.Errorf("%s.rate %v: want calls a second above 0, such as 100 or 0.5", key, b.Rate)
	}
	if b.Burst == 0 {
		b.Burst = max(1, int(math.Ceil(b.Rate)))
	}
	if b.Burst < 1 {
		return nil, fmt.Errorf("%s.burst %d: want at least 1", key, b.Burst)
	}
	return &b, nil
}

// rateLimit refuses calls over a token bucket per target and one per
// client id with RESOURCE_EXHAUSTED, a message saying when to retry, and a
// google.rpc.RetryInfo detail. Limits are per server process.
type rateLimit struct {
	targets map[string]*rate.Limiter // nil entry: no limit for the target

	perClient  *bucketSettings
	clientConf map[string]*bucketSettings
	maxClients int

	mu      sync.Mutex
	clients map[string]*list.Element // of *clientBucket
	lru     list.List
}

// clientBucket is one client id's bucket, an element of the LRU list.
type clientBucket struct {
	id  string
	lim *rate.Limiter
}

// New builds the ratelimit plugin from its settings, strictly; the
// targets it limits are those of env.
func New(env plugin.Env, m map[string]any) (plugin.Plugin, error) {
	s := settings{MaxClients: 10000}
	if err := plugin.DecodeSettings(m, &s); err != nil {
		return nil, err
	}
	if s.MaxClients < 1 {
		return nil, fmt.Errorf("settings.max_clients %d: want at least 1", s.MaxClients)
	}
	if s.PerTarget == nil && s.Targets == nil && s.PerClient == nil && s.Clients == nil {
		return nil, fmt.Errorf("settings: no limit set; give per_target, targets, per_client or clients, e.g. per_target: {rate: 100, burst: 200}")
	}
	rl := &rateLimit{
		targets:    make(map[string]*rate.Limiter),
		clientConf: make(map[string]*bucketSettings),
		maxClients: s.MaxClients,
		clients:    make(map[string]*list.Element),
	}
	perTarget, err := decodeBucket("settings.per_target", s.PerTarget)
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(env.Targets))
	for _, t := range env.Targets {
		known[t] = true
		if perTarget != nil {
			rl.targets[t] = rate.NewLimiter(rate.Limit(perTarget.Rate), perTarget.Burst)
		}
	}
	for _, t := range sortedKeys(s.Targets) {
		key := "settings.targets." + t
		if !known[t] {
			return nil, fmt.Errorf("%s: %q is not a target of this server (have: %v)", key, t, env.Targets)
		}
		b, err := decodeBucket(key, s.Targets[t])
		if err != nil {
			return nil, err
		}
		rl.targets[t] = rate.NewLimiter(rate.Limit(b.Rate), b.Burst)
	}
	if rl.perClient, err = decodeBucket("settings.per_client", s.PerClient); err != nil {
		return nil, err
	}
	for _, id := range sortedKeys(s.Clients) {
		if rl.clientConf[id], err = decodeBucket("settings.clients."+id, s.Clients[id]); err != nil {
			return nil, err
		}
	}
	return rl, nil
}

// Wrap implements plugin.Plugin.
func (rl *rateLimit) Wrap(next plugin.Handler) plugin.Handler {
	return func(ctx context.Context, call *plugin.Call) *plugin.Result {
		now := time.Now()
		var held *rate.Reservation
		if lim := rl.targets[call.Target]; lim != nil {
			r := lim.ReserveN(now, 1)
			if wait := r.DelayFrom(now); wait > 0 || !r.OK() {
				r.CancelAt(now)
				return exhausted(fmt.Sprintf("target %s", call.Target), lim, wait)
			}
			held = r
		}
		if lim := rl.clientLimiter(call.ClientID); lim != nil {
			r := lim.ReserveN(now, 1)
			if wait := r.DelayFrom(now); wait > 0 || !r.OK() {
				r.CancelAt(now)
				if held != nil {
					held.CancelAt(now) // the target's token was not used
				}
				return exhausted(fmt.Sprintf("client %q", call.ClientID), lim, wait)
			}
		}
		return next(ctx, call)
	}
}

// exhausted is the refusal of a call over lim: RESOURCE_EXHAUSTED, with
// the wait until a token is free in the message and as RetryInfo.
func exhausted(who string, lim *rate.Limiter, wait time.Duration) *plugin.Result {
	wait = max(wait, time.Millisecond).Round(time.Millisecond)
	st := status.Newf(codes.ResourceExhausted, "vrpc: rate limit of %s (%g calls/s, burst %d) exceeded; retry after %s",
		who, float64(lim.Limit()), lim.Burst(), wait)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
		st = d
	}
	return &plugin.Result{Status: st}
}

// clientLimiter returns the bucket of client id, creating it on first use;
// nil when clients are not limited.
func (rl *rateLimit) clientLimiter(id string) *rate.Limiter {
	conf := rl.clientConf[id]
	if conf == nil {
		conf = rl.perClient
	}
	if conf == nil {
		return nil
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if el, ok := rl.clients[id]; ok {
		rl.lru.MoveToFront(el)
		return el.Value.(*clientBucket).lim
	}
	b := &clientBucket{id: id, lim: rate.NewLimiter(rate.Limit(conf.Rate), conf.Burst)}
	rl.clients[id] = rl.lru.PushFront(b)
	for rl.lru.Len() > rl.maxClients {
		old := rl.lru.Back()
		rl.lru.Remove(old)
		delete(rl.clients, old.Value.(*clientBucket).id)
	}
	return b.lim
}

// sortedKeys returns m's keys, sorted: settings are checked in a fixed
// order, so the same bad file always gives the same error.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
