package plugin

import (
	"strings"
	"testing"
)

// TestOptionalPluginNotLinked: a built-in plugin the program has not
// linked (its package not imported) is refused with the import to add.
func TestOptionalPluginNotLinked(t *testing.T) {
	const name, pkg = "unlinked-for-test", "example.com/unlinked"
	optional[name] = pkg
	t.Cleanup(func() { delete(optional, name) })
	_, _, err := Chain(Env{}, []Conf{{Name: name, Enabled: true}}, nil)
	if err == nil || !strings.Contains(err.Error(), `plugins[0].name "`+name+`"`) || !strings.Contains(err.Error(), `import _ "`+pkg+`"`) {
		t.Fatalf("got %v, want an error naming plugins[0].name and the import", err)
	}
}
