package vclient

import (
	"fmt"
	"testing"

	"github.com/nextpkg/vrpc/codec/schema"
)

// TestSchemaCacheBounded: the cache keeps the targets used last, up to its
// bound, and hands back the same source for a target it keeps.
func TestSchemaCacheBounded(t *testing.T) {
	var c schemaCache
	srcs := map[string]*schema.Source{}
	put := func(target string) {
		srcs[target] = schema.NewSource(nil)
		c.put(target, srcs[target], 3)
	}
	put("t0")
	put("t1")
	put("t2")
	c.get("t0") // used last: t1 is now the least recent
	put("t3")
	if c.lru.Len() != 3 || len(c.byTarget) != 3 {
		t.Fatalf("keeps %d (%d indexed), want 3", c.lru.Len(), len(c.byTarget))
	}
	for _, target := range []string{"t0", "t2", "t3"} {
		if got := c.get(target); got != srcs[target] {
			t.Errorf("get(%s) = %p, want %p", target, got, srcs[target])
		}
	}
	if c.get("t1") != nil {
		t.Error("t1, the least recently used, is still kept")
	}
}

// TestSchemaPerTarget: Client.Schema gives one source per target, the
// same on every call.
func TestSchemaPerTarget(t *testing.T) {
	c := &Client{}
	a, b := c.Schema("a"), c.Schema("b")
	if a == b || c.Schema("a") != a || c.Schema("b") != b {
		t.Fatal("want one source per target, reused")
	}
	for i := range 2 * MaxCachedSchemas {
		c.Schema(fmt.Sprint("x", i))
	}
	if n := c.schemas.lru.Len(); n != MaxCachedSchemas {
		t.Fatalf("keeps %d schemas, want %d", n, MaxCachedSchemas)
	}
}
