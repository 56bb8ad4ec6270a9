package settings_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/internal/settings"
)

// busSettings is shaped like a backend's rpc_bus.settings.
type busSettings struct {
	BatchSize   int               `json:"batch_size"`
	Compression string            `json:"compression"`
	Idempotent  bool              `json:"idempotent"`
	Linger      settings.Duration `json:"linger"`
	Ratio       float64           `json:"ratio,omitempty"`
	Ignored     string            `json:"-"`
	Untagged    string
}

func defaults() busSettings {
	return busSettings{BatchSize: 16384, Compression: "none", Linger: settings.Duration(5 * time.Millisecond), Ratio: 0.5}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	s := defaults()
	// Values as go-zero's conf hands them over from YAML: numbers as
	// float64, durations as strings.
	err := settings.Decode("rpc_bus.settings", map[string]any{
		"batch_size":  float64(100),
		"compression": "gzip",
		"idempotent":  true,
		"linger":      "1.5s",
	}, &s)
	if err != nil {
		t.Fatal(err)
	}
	want := busSettings{BatchSize: 100, Compression: "gzip", Idempotent: true, Linger: settings.Duration(1500 * time.Millisecond), Ratio: 0.5}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
}

func TestDecodeKeepsDefaults(t *testing.T) {
	t.Parallel()
	for name, m := range map[string]map[string]any{
		"nil map":   nil,
		"empty map": {},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := defaults()
			if err := settings.Decode("rpc_bus.settings", m, &s); err != nil {
				t.Fatal(err)
			}
			if s != defaults() {
				t.Fatalf("got %+v, want the defaults %+v", s, defaults())
			}
		})
	}
	// A key that is set changes only its own field.
	s := defaults()
	if err := settings.Decode("rpc_bus.settings", map[string]any{"compression": "zstd"}, &s); err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Compression = "zstd"
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
}

func TestDecodeUnknownKey(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"lingr", "Linger", "Ignored", "Untagged", "-"} {
		s := defaults()
		err := settings.Decode("rpc_bus.settings", map[string]any{key: "x"}, &s)
		if err == nil {
			t.Fatalf("key %q: no error", key)
		}
		msg := err.Error()
		for _, want := range []string{"rpc_bus.settings", `unknown key "` + key + `"`, "batch_size, compression, idempotent, linger, ratio"} {
			if !strings.Contains(msg, want) {
				t.Errorf("key %q: error %q does not contain %q", key, msg, want)
			}
		}
	}
}

// TestDecodeFirstBadKeyIsDeterministic: with several bad keys the same one
// is reported every time, so an operator fixing them one by one is not sent
// back and forth.
func TestDecodeFirstBadKeyIsDeterministic(t *testing.T) {
	t.Parallel()
	m := map[string]any{"zz": 1, "aa": 1, "mm": 1, "linger": 5}
	for range 20 {
		s := defaults()
		err := settings.Decode("p", m, &s)
		if err == nil || !strings.Contains(err.Error(), `"aa"`) {
			t.Fatalf("got %v, want the error about key aa", err)
		}
	}
}

func TestDecodeWrongType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key   string
		value any
		want  string
	}{
		{"linger", 5, `rpc_bus.settings.linger: want a duration such as "100ms", got 5`},
		{"linger", "soon", `rpc_bus.settings.linger: want a duration such as "100ms", got "soon"`},
		{"batch_size", "big", `rpc_bus.settings.batch_size: want a number, got "big"`},
		{"compression", 3, `rpc_bus.settings.compression: want a string, got 3`},
		{"idempotent", "yes", `rpc_bus.settings.idempotent: want true or false, got "yes"`},
		{"ratio", []any{1}, `rpc_bus.settings.ratio: want a number, got [1]`},
	}
	for _, tt := range tests {
		s := defaults()
		err := settings.Decode("rpc_bus.settings", map[string]any{tt.key: tt.value}, &s)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s = %#v: got error %v, want %q", tt.key, tt.value, err, tt.want)
		}
	}
	// A fraction for an integer is refused too, naming the key.
	s := defaults()
	err := settings.Decode("rpc_bus.settings", map[string]any{"batch_size": 1.5}, &s)
	if err == nil || !strings.HasPrefix(err.Error(), "rpc_bus.settings.batch_size: ") {
		t.Errorf("batch_size = 1.5: got error %v, want one naming rpc_bus.settings.batch_size", err)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	got := settings.Keys(&busSettings{})
	want := []string{"batch_size", "compression", "idempotent", "linger", "ratio"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestDurationUnmarshalJSON(t *testing.T) {
	t.Parallel()
	var d settings.Duration
	if err := d.UnmarshalJSON([]byte(`"250ms"`)); err != nil || time.Duration(d) != 250*time.Millisecond {
		t.Fatalf("got %v, %v", time.Duration(d), err)
	}
	for _, bad := range []string{`250`, `"250"`, `"fast"`, `true`} {
		if err := d.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// extraSettings are keys one kind of bus takes on top of busSettings, as
// the embedded Kafka broker's data_dir.
type extraSettings struct {
	DataDir string `json:"data_dir"`
}

// tlsSettings embeds the shared TLS keys.
type tlsSettings struct {
	Linger settings.Duration `json:"linger"`
	settings.TLS
}

func TestDecodeKeys(t *testing.T) {
	t.Parallel()
	s, x := defaults(), extraSettings{}
	ke := settings.DecodeKeys(map[string]any{"batch_size": float64(100), "data_dir": "/var/lib/vrpc", "linger": "2s"}, &s, &x)
	if ke != nil {
		t.Fatal(ke)
	}
	want := defaults()
	want.BatchSize, want.Linger = 100, settings.Duration(2*time.Second)
	if s != want || x.DataDir != "/var/lib/vrpc" {
		t.Fatalf("got %+v and %+v, want %+v and data_dir set", s, x, want)
	}
	if ke := settings.DecodeKeys(nil, &s); ke != nil {
		t.Fatalf("nil map: %v", ke)
	}

	// Keys of an embedded struct are the struct's own.
	var ts tlsSettings
	if ke := settings.DecodeKeys(map[string]any{"tls_server_name": "broker", "tls": true}, &ts); ke != nil {
		t.Fatal(ke)
	}
	if !ts.TLS.TLS || ts.ServerName != "broker" {
		t.Fatalf("embedded TLS keys not decoded: %+v", ts)
	}
}

// TestDecodeKeysErrors: the error names the bad key without a prefix, so
// that each backend can report it in its own error type, and says what to
// do.
func TestDecodeKeysErrors(t *testing.T) {
	t.Parallel()
	known := "known: batch_size, compression, data_dir, idempotent, linger, ratio)"
	tests := []struct {
		m       map[string]any
		key     string
		problem string
	}{
		{map[string]any{"lingr": "1s"}, "lingr", "unknown key (did you mean linger? " + known},
		{map[string]any{"datadir": "/x"}, "datadir", "unknown key (did you mean data_dir? " + known},
		{map[string]any{"nothing_like_it": 1}, "nothing_like_it", "unknown key (" + known},
		{map[string]any{"linger": 5}, "linger", `want a duration such as "100ms", got 5`},
		{map[string]any{"data_dir": true}, "data_dir", "want a string, got true"},
		// With several bad keys, the first in order, every time.
		{map[string]any{"zz": 1, "aa": 1, "mm": 1, "linger": 5}, "aa", "unknown key ("},
	}
	for _, tt := range tests {
		for range 5 {
			s, x := defaults(), extraSettings{}
			ke := settings.DecodeKeys(tt.m, &s, &x)
			if ke == nil {
				t.Fatalf("%v: no error", tt.m)
			}
			if ke.Key != tt.key || !strings.HasPrefix(ke.Err.Error(), tt.problem) {
				t.Fatalf("%v: got key %q, problem %q; want key %q, problem %q", tt.m, ke.Key, ke.Err, tt.key, tt.problem)
			}
			if ke.Error() != ke.Key+": "+ke.Err.Error() || !errors.Is(ke, ke.Err) {
				t.Fatalf("%v: KeyError %q does not name its key and wrap its problem", tt.m, ke)
			}
		}
	}
}

func TestClosest(t *testing.T) {
	t.Parallel()
	known := []string{"ack_wait", "max_age", "max_bytes", "queue_type", "tls", "tls_ca_file"}
	for _, tt := range []struct{ key, want string }{
		{"ackwait", "ack_wait"},     // one deleted
		{"queue_typ", "queue_type"}, // one missing
		{"max_bytse", "max_bytes"},  // two swapped
		{"tsl", "tls"},
		{"tls_ca_flie", "tls_ca_file"},
		{"max_ages", "max_age"},
		{"ack_wait", "ack_wait"},
		{"replicas", ""}, // nothing near
		{"tls_cert_file", ""},
	} {
		if got := settings.Closest(tt.key, known); got != tt.want {
			t.Errorf("Closest(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if got := settings.Closest("x", nil); got != "" {
		t.Errorf("Closest with no known keys = %q", got)
	}
	// Of equally near keys, the first listed.
	if got := settings.Closest("max_a", []string{"max_b", "max_c"}); got != "max_b" {
		t.Errorf("Closest(max_a) = %q, want max_b", got)
	}
}

// TestDecodeWrongTypeOfSecret: the error names a secret key and the type
// it got, never the value, which may be the secret mistyped.
func TestDecodeWrongTypeOfSecret(t *testing.T) {
	t.Parallel()
	var s struct {
		Password string `json:"password"`
		Token    string `json:"token"`
	}
	for _, key := range []string{"password", "token"} {
		err := settings.Decode("rpc_bus.settings", map[string]any{key: 918273645}, &s)
		if want := "rpc_bus.settings." + key + ": want a string, got a int"; err == nil || err.Error() != want {
			t.Errorf("%s = 918273645: got error %v, want %q", key, err, want)
		}
	}
}
