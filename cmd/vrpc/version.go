package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/nextpkg/vrpc"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the vRPC version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "vrpc %s (%s %s/%s)\n", vrpc.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
