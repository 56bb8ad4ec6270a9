package vserver_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/vserver"
)

func init() {
	vserver.RegisterPluginBuilder("vserver_test.hooks", newHooks)
}

// hookLog records the start and stop hooks of the vserver_test.hooks
// plugins of one test, which name it in their settings.
type hookLog struct {
	mu     sync.Mutex
	events []string
}

func (l *hookLog) add(e string) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *hookLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

var hookLogs sync.Map // log name → *hookLog

// hooks is a plugin with a lifecycle: it records Start and Stop, counts
// the calls it sees between them, and fails Start when told to.
type hooks struct {
	tag, fail string
	log       *hookLog
	running   bool
	mu        sync.Mutex
}

func newHooks(env vserver.PluginEnv, m map[string]any) (vserver.Plugin, error) {
	var s struct {
		Log  string `json:"log"`
		Tag  string `json:"tag"`
		Fail string `json:"fail"`
	}
	if err := vserver.DecodeSettings(m, &s); err != nil {
		return nil, err
	}
	l, _ := hookLogs.LoadOrStore(s.Log, &hookLog{})
	return &hooks{tag: s.Tag, fail: s.Fail, log: l.(*hookLog)}, nil
}

func (h *hooks) Start(context.Context) error {
	if h.fail != "" {
		h.log.add("start-failed " + h.tag)
		return errors.New(h.fail)
	}
	h.mu.Lock()
	h.running = true
	h.mu.Unlock()
	h.log.add("start " + h.tag)
	return nil
}

func (h *hooks) Stop(context.Context) error {
	h.mu.Lock()
	h.running = false
	h.mu.Unlock()
	h.log.add("stop " + h.tag)
	return nil
}

func (h *hooks) Wrap(next vserver.Handler) vserver.Handler {
	return func(ctx context.Context, call *vserver.Call) *vserver.Result {
		h.mu.Lock()
		running := h.running
		h.mu.Unlock()
		if running {
			h.log.add("call " + h.tag)
		} else {
			h.log.add("call-while-stopped " + h.tag)
		}
		return next(ctx, call)
	}
}

// logName is unique to one run of a test (-count=N runs it again).
func logName(t *testing.T) string { return fmt.Sprintf("%s-%p", t.Name(), t) }

func hooksConf(log, tag, fail string) vrpc.PluginConf {
	return vrpc.PluginConf{Name: "vserver_test.hooks", Enabled: true, Settings: map[string]any{"log": log, "tag": tag, "fail": fail}}
}

// TestPluginLifecycle: Start hooks run in config order before the first
// call, Stop hooks in reverse order after the last; plugins without hooks
// (the simple Middleware kind) mix in freely.
func TestPluginLifecycle(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	cfg := serverConfig(busCfg, startDemo(t, "demo-1"))
	log := logName(t)
	cfg.Plugins = []vrpc.PluginConf{hooksConf(log, "a", ""), tag("mw"), hooksConf(log, "b", "")}
	srv, err := vserver.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Start() }()
	<-srv.Ready()
	c := newClient(t, busCfg, "lifecycle-caller")
	if _, err := c.Call(testContext(t), "demo", "Ping", mustMarshal(t, &demo.Request{Message: "x"}), nil); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := <-errc; err != nil {
		t.Fatalf("Start returned %v after Stop", err)
	}
	l, _ := hookLogs.Load(log)
	want := []string{"start a", "start b", "call a", "call b", "stop b", "stop a"}
	if got := l.(*hookLog).get(); !slices.Equal(got, want) {
		t.Errorf("hooks ran %q, want %q", got, want)
	}
}

// TestPluginStartFails: a Start error stops start-up with an error naming
// the plugin, and the plugins already started are stopped again.
func TestPluginStartFails(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	cfg := serverConfig(busCfg, startDemo(t, "demo-1"))
	log := logName(t)
	cfg.Plugins = []vrpc.PluginConf{hooksConf(log, "a", ""), hooksConf(log, "b", "no collector"), hooksConf(log, "c", "")}
	srv, err := vserver.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Start()
	if err == nil {
		t.Fatal("Start succeeded with a failing plugin")
	}
	for _, want := range []string{"plugins[1]", "vserver_test.hooks", "start", "no collector"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	srv.Stop()
	l, _ := hookLogs.Load(log)
	want := []string{"start a", "start-failed b", "stop a"}
	if got := l.(*hookLog).get(); !slices.Equal(got, want) {
		t.Errorf("hooks ran %q, want %q", got, want)
	}
}
