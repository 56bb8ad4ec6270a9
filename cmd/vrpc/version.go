package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/nextpkg/vrpc"
)

// versionModules are the modules `vrpc version` reports, in this order:
// the ones a bug report most often needs.
var versionModules = []string{
	"google.golang.org/grpc",
	"github.com/twmb/franz-go",
	"github.com/nats-io/nats.go",
	"github.com/rabbitmq/amqp091-go",
	"github.com/redis/go-redis/v9",
	"github.com/eclipse/paho.golang",
	"github.com/zeromicro/go-zero",
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the vRPC version and the versions of the modules it was built with",
		Long: `Print the vRPC release, the Go version and platform, the main module's
version (as the build recorded it: a tag, a pseudo-version, or (devel) for
a build from a working tree), and the versions of the gRPC, bus client and
go-zero modules linked in. Include it in a bug report.`,
		Example: `  vrpc version
  vrpc --version   # the release alone`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printVersion(cmd.OutOrStdout())
		},
	}
}

// printVersion writes the release line, then one "module version" line
// for the main module and each of versionModules the binary holds.
func printVersion(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "vrpc %s (%s %s/%s)\n", vrpc.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH); err != nil {
		return err
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		_, err := fmt.Fprintln(w, "(no module information: built without module support)")
		return err
	}
	versions := make(map[string]string, len(bi.Deps))
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v += " => " + d.Replace.Path + " " + d.Replace.Version
		}
		versions[d.Path] = v
	}
	main := bi.Main.Path
	if main == "" {
		main = "github.com/nextpkg/vrpc" // a test binary records no main module
	}
	mainVersion := bi.Main.Version
	if mainVersion == "" {
		mainVersion = "(devel)"
	}
	if _, err := fmt.Fprintf(w, "%-32s %s\n", main, mainVersion); err != nil {
		return err
	}
	for _, m := range versionModules {
		v, ok := versions[m]
		if !ok {
			v = "(not linked)"
		}
		if _, err := fmt.Fprintf(w, "%-32s %s\n", m, v); err != nil {
			return err
		}
	}
	return nil
}
