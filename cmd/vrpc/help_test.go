package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasExample: `--help` of every command shows an example
// of its use.
func TestEveryCommandHasExample(t *testing.T) {
	root := newRootCmd(io.Discard)
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		n++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 9 {
		t.Errorf("walked %d commands, want every one (at least 9)", n)
	}
	// And --help shows it.
	code, out, _ := vrpcRun(t, context.Background(), "version", "--help")
	if code != 0 || !strings.Contains(out, "Examples:\n  vrpc version") {
		t.Errorf("vrpc version --help: exit %d, output %q, want its examples", code, out)
	}
}
