package settings_test

import (
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
