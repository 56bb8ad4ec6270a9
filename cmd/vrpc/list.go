package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
)

type listFlags struct {
	file    string
	timeout time.Duration
	headers []string
}

func newListCmd() *cobra.Command {
	var f listFlags
	cmd := &cobra.Command{
		Use:   "list [-f client.yaml] TARGET [SERVICE]",
		Short: "List a target's services, or a service's methods, through its reflection over the bus",
		Long: `List what a target serves, asking its gRPC server reflection through the bus,
like grpcurl list.

Without SERVICE it prints the target's services, one per line (the reflection
service itself left out). With SERVICE it prints the service's methods, one per
line as package.Service.Method; a streaming method is marked, since vRPC
carries unary calls only. An unknown service prints its status as 'vrpc call'
does and exits 1. -H adds request metadata to the reflection calls, such as
the token a server's auth plugin asks for.

The client configuration is found as for 'vrpc call'; as there, a bus that
does not answer within timeout.connect exits 69.`,
		Example: `  vrpc list -f client.yaml demo
  vrpc list -f client.yaml demo demo.Demo
  vrpc list -f client.yaml -H 'vrpc-token: s3cret' demo`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runList(cmd, args, f)
		},
		Annotations: map[string]string{logLevelAnnotation: "error"},
	}
	addClientConfigFlag(cmd, &f.file)
	cmd.Flags().StringArrayVarP(&f.headers, "header", "H", nil, `request metadata "name: value" (repeatable; a -bin name takes base64)`)
	cmd.Flags().DurationVar(&f.timeout, "timeout", 0, "deadline of the whole listing (default: timeout.request of the client configuration, for each reflection call)")
	return cmd
}

func runList(cmd *cobra.Command, args []string, f listFlags) error {
	if f.timeout < 0 {
		return usageError(cmd, fmt.Errorf("--timeout %v: want a positive duration", f.timeout))
	}
	md, err := parseHeaders(f.headers)
	if err != nil {
		return usageError(cmd, err)
	}
	client, err := openClient(f.file)
	if err != nil {
		return err
	}
	defer closeClient(client)

	ctx := cmd.Context()
	if len(md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, metadata.New(md))
	}
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	target := args[0]
	src := client.Schema(target)
	var lines []string
	if len(args) == 1 {
		lines, err = src.Services(ctx)
	} else {
		lines, err = listMethods(ctx, args[0], strings.Trim(args[1], "/"), src)
	}
	if err != nil {
		return reportStatus(cmd.ErrOrStderr(), err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	_, err = fmt.Fprint(cmd.OutOrStdout(), b.String())
	return err
}

// serviceSource is what listMethods needs of a schema.Source.
type serviceSource interface {
	Services(ctx context.Context) ([]string, error)
	Service(ctx context.Context, name string) (protoreflect.ServiceDescriptor, error)
}

// listMethods lists service's methods as pkg.Svc.Method, marking the
// streaming ones.
func listMethods(ctx context.Context, target, service string, src serviceSource) ([]string, error) {
	sd, err := src.Service(ctx, service)
	if status.Code(err) == codes.NotFound {
		// Say what the target does have, so the caller can fix the name.
		if have, lerr := src.Services(ctx); lerr == nil {
			return nil, status.Errorf(codes.NotFound, "target %s has no service %q (has: %s)", target, service, strings.Join(have, ", "))
		}
	}
	if err != nil {
		return nil, err
	}
	ms := sd.Methods()
	out := make([]string, 0, ms.Len())
	for i := range ms.Len() {
		m := ms.Get(i)
		line := string(m.FullName())
		switch {
		case m.IsStreamingClient() && m.IsStreamingServer():
			line += " (bidi streaming; not supported by vRPC)"
		case m.IsStreamingClient():
			line += " (client streaming; not supported by vRPC)"
		case m.IsStreamingServer():
			line += " (server streaming; not supported by vRPC)"
		}
		out = append(out, line)
	}
	return out, nil
}
