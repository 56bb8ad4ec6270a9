package vserver

import (
	"strings"
	"testing"

	"github.com/nextpkg/vrpc/vconfig"
)

// TestDedupStoreNotLinked: a dedup.store that vconfig knows but the
// program has not linked is refused at NewServer with the import that
// links it.
func TestDedupStoreNotLinked(t *testing.T) {
	const name, pkg = "unlinked-for-test", "example.com/unlinked"
	dedupPackages[name] = pkg
	t.Cleanup(func() { delete(dedupPackages, name) })
	_, err := newDedupStore(vconfig.DedupConf{Store: name})
	if err == nil || !strings.Contains(err.Error(), "dedup.store "+name) || !strings.Contains(err.Error(), `import _ "`+pkg+`"`) {
		t.Fatalf("got %v, want an error naming dedup.store and the import", err)
	}
}
