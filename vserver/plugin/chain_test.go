package plugin_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

// Plugins are registered once per process, as a plugin package's init
// does; Register panics on a second registration (-count=N).
func init() {
	plugin.Register("plugin_test.tag", newTag)
	plugin.RegisterBuilder("plugin_test.hooks", newHooks)
}

// newTag builds a plugin that appends its tag to the call's "x-order"
// metadata on the way in and to the result's "x-order-out" trailer on the
// way out.
func newTag(m map[string]any) (plugin.Middleware, error) {
	var s struct {
		Tag string `json:"tag"`
	}
	if err := plugin.DecodeSettings(m, &s); err != nil {
		return nil, err
	}
	return func(next plugin.Handler) plugin.Handler {
		return func(ctx context.Context, call *plugin.Call) *plugin.Result {
			call.Metadata.Append("x-order", s.Tag)
			res := next(ctx, call)
			res.Trailer.Append("x-order-out", s.Tag)
			return res
		}
	}, nil
}

// events records the hooks of the hooks plugins of one test.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, s)
}

var eventLogs sync.Map // test name → *events

// hooks is a plugin with a lifecycle that records its hooks and fails
// them when told to.
type hooks struct {
	tag, failStart, failStop string
	ev                       *events
}

func newHooks(_ plugin.Env, m map[string]any) (plugin.Plugin, error) {
	var s struct {
		Log       string `json:"log"`
		Tag       string `json:"tag"`
		FailStart string `json:"fail_start"`
		FailStop  string `json:"fail_stop"`
	}
	if err := plugin.DecodeSettings(m, &s); err != nil {
		return nil, err
	}
	ev, _ := eventLogs.LoadOrStore(s.Log, &events{})
	return &hooks{tag: s.Tag, failStart: s.FailStart, failStop: s.FailStop, ev: ev.(*events)}, nil
}

func (h *hooks) Wrap(next plugin.Handler) plugin.Handler { return next }

func (h *hooks) Start(context.Context) error {
	h.ev.add("start " + h.tag)
	if h.failStart != "" {
		return errors.New(h.failStart)
	}
	return nil
}

func (h *hooks) Stop(context.Context) error {
	h.ev.add("stop " + h.tag)
	if h.failStop != "" {
		return errors.New(h.failStop)
	}
	return nil
}

func tag(t string) plugin.Conf {
	return plugin.Conf{Name: "plugin_test.tag", Enabled: true, Settings: map[string]any{"tag": t}}
}

// TestChainOrder: the first plugin listed sees the call first and the
// result last; disabled entries are left out but keep their index.
func TestChainOrder(t *testing.T) {
	target := func(_ context.Context, call *plugin.Call) *plugin.Result {
		return &plugin.Result{Trailer: metadata.Pairs("x-order-out", "target"), Header: call.Metadata}
	}
	confs := []plugin.Conf{
		tag("one"),
		{Name: "plugin_test.tag", Enabled: false, Settings: map[string]any{"tag": "off"}},
		{Name: "not-registered", Enabled: false},
		tag("two"),
	}
	h, built, err := plugin.Chain(plugin.Env{}, confs, target)
	if err != nil {
		t.Fatal(err)
	}
	res := h(context.Background(), &plugin.Call{Metadata: metadata.MD{}})
	if got := res.Header.Get("x-order"); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("target saw x-order %q, want [one two]", got)
	}
	if got := res.Trailer.Get("x-order-out"); !slices.Equal(got, []string{"target", "two", "one"}) {
		t.Errorf("caller got x-order-out %q, want [target two one]", got)
	}
	var where []int
	for _, b := range built {
		where = append(where, b.Index)
	}
	if !slices.Equal(where, []int{0, 3}) {
		t.Errorf("built entries %v, want [0 3]", where)
	}
}

// TestChainErrors: an unknown name or a plugin's bad settings name the
// entry of the plugins list.
func TestChainErrors(t *testing.T) {
	for _, tc := range []struct {
		confs []plugin.Conf
		want  []string
	}{
		{[]plugin.Conf{tag("a"), {Name: "nope", Enabled: true}},
			[]string{`plugins[1].name "nope" is not a registered plugin`, "plugin_test.tag", "enabled: false"}},
		{[]plugin.Conf{tag("a"), {Name: "plugin_test.tag", Enabled: true, Settings: map[string]any{"tga": "x"}}},
			[]string{"plugins[1] (plugin_test.tag)", `settings: unknown key "tga"`, "tag"}},
	} {
		_, _, err := plugin.Chain(plugin.Env{}, tc.confs, nil)
		if err == nil {
			t.Errorf("%v: Chain accepted it", tc.confs)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
	}
}

// TestLifecycle: StartAll starts in config order and skips plugins
// without hooks; StopAll stops in reverse order, every plugin whatever the
// others return. A failed Start stops the ones started, and the error
// names both failures.
func TestLifecycle(t *testing.T) {
	hooksConf := func(log, tag, failStart, failStop string) plugin.Conf {
		return plugin.Conf{Name: "plugin_test.hooks", Enabled: true, Settings: map[string]any{
			"log": log, "tag": tag, "fail_start": failStart, "fail_stop": failStop}}
	}
	ctx := context.Background()

	log := t.Name() + "/ok"
	_, built, err := plugin.Chain(plugin.Env{}, []plugin.Conf{
		hooksConf(log, "a", "", "a will not stop"), tag("mw"), hooksConf(log, "b", "", "")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	started, err := plugin.StartAll(ctx, built)
	if err != nil || len(started) != 2 {
		t.Fatalf("StartAll: %d started, %v", len(started), err)
	}
	err = plugin.StopAll(ctx, started)
	if err == nil || !strings.Contains(err.Error(), "plugins[0] (plugin_test.hooks): stop: a will not stop") {
		t.Errorf("StopAll: %v, want plugins[0]'s stop error", err)
	}
	ev, _ := eventLogs.Load(log)
	if got, want := ev.(*events).log, []string{"start a", "start b", "stop b", "stop a"}; !slices.Equal(got, want) {
		t.Errorf("hooks ran %q, want %q", got, want)
	}

	log = t.Name() + "/fail"
	_, built, err = plugin.Chain(plugin.Env{}, []plugin.Conf{
		hooksConf(log, "a", "", "a will not stop"), hooksConf(log, "b", "no collector", ""), hooksConf(log, "c", "", "")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	started, err = plugin.StartAll(ctx, built)
	if started != nil || err == nil {
		t.Fatalf("StartAll with a failing Start: %v, %v", started, err)
	}
	for _, w := range []string{"plugins[1] (plugin_test.hooks): start: no collector", "plugins[0] (plugin_test.hooks): stop: a will not stop"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	ev, _ = eventLogs.Load(log)
	if got, want := ev.(*events).log, []string{"start a", "start b", "stop a"}; !slices.Equal(got, want) {
		t.Errorf("hooks ran %q, want %q", got, want)
	}
}

// TestRegisterTwice: a name is registered once; Names lists it.
func TestRegisterTwice(t *testing.T) {
	if !slices.Contains(plugin.Names(), "plugin_test.tag") {
		t.Errorf("Names() = %q, without plugin_test.tag", plugin.Names())
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "plugin_test.tag") {
			t.Errorf("second Register: panic %v, want one naming plugin_test.tag", r)
		}
	}()
	plugin.Register("plugin_test.tag", newTag)
}

// TestQueueTime: the time on the bus, zero without a send time and never
// negative.
func TestQueueTime(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		sent time.Time
		want time.Duration
	}{
		{now.Add(-3 * time.Millisecond), 3 * time.Millisecond},
		{now.Add(time.Millisecond), 0}, // the caller's clock is ahead
		{time.Time{}, 0},
		{time.Unix(0, 0), 0},
	} {
		c := &plugin.Call{SentAt: tc.sent, ReceivedAt: now}
		if got := c.QueueTime(); got != tc.want {
			t.Errorf("sent %v: QueueTime %v, want %v", tc.sent, got, tc.want)
		}
	}
}
