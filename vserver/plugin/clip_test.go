package plugin_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

func TestClip(t *testing.T) {
	long := strings.Repeat("x", 2<<20)
	cases := []struct {
		name, in string
		whole    bool
	}{
		{"empty", "", true},
		{"short", "req-1", true},
		{"exactly the limit", strings.Repeat("a", plugin.ClipBytes), true},
		{"one over", strings.Repeat("a", plugin.ClipBytes+1), false},
		{"2 MiB", long, false},
		{"multibyte at the cut", strings.Repeat("a", plugin.ClipBytes-1) + strings.Repeat("é", 100), false},
	}
	for _, c := range cases {
		got := plugin.Clip(c.in)
		if c.whole {
			if got != c.in {
				t.Errorf("%s: Clip changed a short field to %q", c.name, got)
			}
			continue
		}
		if len(got) > plugin.ClipBytes+40 {
			t.Errorf("%s: clipped to %d bytes", c.name, len(got))
		}
		if !strings.Contains(got, "clipped") || !strings.HasPrefix(c.in, strings.SplitN(got, "…", 2)[0]) {
			t.Errorf("%s: %q is not a marked prefix", c.name, got)
		}
		if !utf8.ValidString(got) {
			t.Errorf("%s: %q is not valid UTF-8", c.name, got)
		}
		if b := plugin.AppendClip([]byte("id="), c.in); string(b) != "id="+got {
			t.Errorf("%s: AppendClip %q, Clip %q", c.name, b, got)
		}
	}
}
