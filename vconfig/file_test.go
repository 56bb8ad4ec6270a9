package vconfig

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

const goodServer = `
name: strict
port: -1
rpc_bus: {type: memory, settings: {max_backlog: 10}}
targets:
  demo: {endpoint: "127.0.0.1:1", settings: {max_retries: 1}}
security:
  clients:
    edge-1: {allow: [demo], keys: {k1: {secret: s3cret-s3cret-s3cret-s3cret-s3cret}}}
`

const goodClient = `
client_id: strict
rpc_bus: {type: memory}
services: {demo.Demo: demo}
gateway: {listen: 127.0.0.1:0}
`

func TestLoadUnknownKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, text string
		client           bool
		want             string
	}{
		{"server good", "s.yaml", goodServer, false, ""},
		{"client good", "c.yaml", goodClient, true, ""},
		{"rpc_bus.setings", "s.yaml", strings.Replace(goodServer, "settings: {max_backlog", "setings: {max_backlog", 1), false,
			"rpc_bus.setings: unknown key (did you mean settings?)"},
		{"top-level max_inflight", "s.yaml", goodServer + "max_inflight: 10\n", false,
			"max_inflight: unknown key (did you mean max_in_flight?)"},
		{"targets.demo.endpont", "s.yaml", strings.Replace(goodServer, "endpoint:", "endpont:", 1), false,
			"targets.demo.endpont: unknown key (did you mean endpoint?)"},
		{"security.clients.edge-1.keys.k1.secrt", "s.yaml", strings.Replace(goodServer, "{secret:", "{secrt:", 1), false,
			"security.clients.edge-1.keys.k1.secrt: unknown key (did you mean secret?)"},
		{"no near key", "s.yaml", goodServer + "colour: blue\n", false, "colour: unknown key"},
		{"client rpc_bus.setings", "c.yaml", strings.Replace(goodClient, "{type: memory}", "{type: memory, setings: {}}", 1), true,
			"rpc_bus.setings: unknown key (did you mean settings?)"},
		{"client timeout.requst", "c.yaml", goodClient + "timeout: {requst: 1s}\n", true,
			"timeout.requst: unknown key (did you mean request?)"},
		{"json", "s.json", `{"name": "strict", "targets": {"demo": {"endpoint": "127.0.0.1:1"}}, "max_inflight": 3}`, false,
			"max_inflight: unknown key (did you mean max_in_flight?)"},
		{"toml", "s.toml", "name = \"strict\"\nmax_inflight = 3\n[targets.demo]\nendpoint = \"127.0.0.1:1\"\n", false,
			"max_inflight: unknown key (did you mean max_in_flight?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := writeFile(t, tc.file, tc.text)
			var err error
			if tc.client {
				var cfg ClientConfig
				err = LoadClient(file, &cfg)
			} else {
				var cfg Config
				err = Load(file, &cfg)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "server config "+file) && !strings.HasPrefix(err.Error(), "client config "+file) {
				t.Errorf("%v: does not name the file", err)
			}
		})
	}
}

// The loader fills what go-zero's conf filled: tag defaults, durations,
// keys in any case, ${ENV}.
func TestLoadDefaultsAndValues(t *testing.T) {
	t.Setenv("VRPC_TEST_ENDPOINT", "127.0.0.1:7")
	file := writeFile(t, "s.yaml", `
targets:
  demo: {endpoint: "${VRPC_TEST_ENDPOINT}"}
Topics: {Request: req}
drain_timeout: 2s
plugins: [{name: logger}]
`)
	var cfg Config
	if err := Load(file, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 8080 || cfg.Targets["demo"].Endpoint != "127.0.0.1:7" || cfg.Targets["demo"].Timeout != "30s" ||
		cfg.Topics.Request != "req" || cfg.Topics.Response != DefaultResponseTopic || cfg.DrainTimeout != 2*time.Second ||
		!cfg.Plugins[0].Enabled || cfg.Security.ReplayWindow != 5*time.Minute || cfg.Dedup.Store != "memory" {
		t.Errorf("loaded %+v", cfg)
	}
	var ccfg ClientConfig
	if err := LoadClient(writeFile(t, "c.yaml", "rpc_bus: {type: memory}\n"), &ccfg); err != nil {
		t.Fatal(err)
	}
	if ccfg.Retry.Count != DefaultRetryCount || ccfg.Timeout.Request != DefaultRequestTimeout {
		t.Errorf("loaded %+v", ccfg)
	}
}

func TestLoadExamples(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../example/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("../example/*/*.yaml")
	files = append(files, more...)
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	for _, file := range files {
		var err error
		if strings.HasSuffix(file, "client.yaml") {
			var cfg ClientConfig
			err = LoadClient(file, &cfg)
		} else {
			var cfg Config
			err = Load(file, &cfg)
		}
		if err != nil {
			t.Error(err)
		}
	}
}

// Every YAML block of the README decodes with no unknown key (as a server
// or a client file; the gateway section is vgateway's to check). Validate is
// left out: the blocks name files that do not exist here.
func TestReadmeYAML(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d yaml blocks", len(blocks))
	}
	for i, b := range blocks {
		file := writeFile(t, "block.yaml", string(b[1]))
		serr := decodeFile(file, &Config{})
		cerr := decodeFile(file, &ClientConfig{}, "gateway")
		if serr != nil && cerr != nil {
			t.Errorf("README yaml block %d:\n%s\nas a server file: %v\nas a client file: %v", i, b[1], serr, cerr)
		}
	}
}
