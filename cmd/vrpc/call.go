package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/zeromicro/go-zero/core/logx"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
)

type callFlags struct {
	file         string
	headers      []string
	data         string
	timeout      time.Duration
	protoNames   bool
	emitDefaults bool
	verbose      bool
}

func newCallCmd() *cobra.Command {
	var f callFlags
	cmd := &cobra.Command{
		Use:   "call [-f client.yaml] [-H 'k: v']... TARGET METHOD [JSON]",
		Short: "Call a method of a target over the bus with a JSON request, like grpcurl",
		Long: `Call one unary method of a target through vRPC and print the reply as JSON.

METHOD is a short name ("Ping"), which the server resolves through the
target's server reflection, or a full one ("demo.Demo/Ping", "/demo.Demo/Ping"
or "demo.Demo.Ping", as 'vrpc list' prints it). The request is JSON (protojson:
proto or lowerCamelCase field names), given as the third argument, with
-d '<json>', or read from stdin with -d @; without any, it is {}. The server
transcodes it with the target's descriptors, so the target needs server
reflection (or a descriptor set in the server's configuration).

The reply is printed to stdout, indented; -v also prints the response headers
and trailers to stderr. A failed call prints its status to stderr as grpcurl
does (ERROR:, Code:, Message:) and exits 1; a bad command line or client
configuration exits 2; a bus that does not answer within timeout.connect
(default 5s) exits 69, whatever the bus. A call still waiting for its reply
after a few seconds says so on stderr (no server may be running for the
target: the request waits on the bus until one takes it, or the deadline).

Without -f the client configuration is found as vrpc.MustInitClient finds it:
$VRPC_CLIENT_CONFIG, else client.yaml or etc/client.yaml in the working
directory, else the defaults (Kafka on 127.0.0.1:9092).`,
		Example: `  vrpc call -f client.yaml demo Ping '{"message": "hi"}'
  vrpc call -f client.yaml -H 'user-id: 12345' -v demo demo.Demo/Ping -d '{"message": "hi"}'
  echo '{"message": "hi"}' | vrpc call -f client.yaml --timeout 3s demo Ping -d @`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCall(cmd, args, f)
		},
		Annotations: map[string]string{logLevelAnnotation: "error"},
	}
	fl := cmd.Flags()
	addClientConfigFlag(cmd, &f.file)
	fl.StringArrayVarP(&f.headers, "header", "H", nil, `request metadata "name: value" (repeatable; a -bin name takes base64)`)
	fl.StringVarP(&f.data, "data", "d", "", `the request JSON, or @ to read it from stdin`)
	fl.DurationVar(&f.timeout, "timeout", 0, "deadline of the call (default: timeout.request of the client configuration)")
	fl.BoolVar(&f.protoNames, "proto-names", false, "write the reply's field names as in the .proto file (user_id) instead of lowerCamelCase")
	fl.BoolVar(&f.emitDefaults, "emit-defaults", false, "write the reply's fields that hold their default value")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "also print the response headers and trailers to stderr")
	return cmd
}

func runCall(cmd *cobra.Command, args []string, f callFlags) error {
	target, method := args[0], callMethod(args[1])
	md, err := parseHeaders(f.headers)
	if err != nil {
		return usageError(cmd, err)
	}
	if f.timeout < 0 {
		return usageError(cmd, fmt.Errorf("--timeout %v: want a positive duration", f.timeout))
	}
	hasData := cmd.Flags().Changed("data")
	if hasData && len(args) == 3 {
		return usageError(cmd, errors.New("the request is given twice: as an argument and with -d; give one"))
	}

	client, err := openClient(f.file)
	if err != nil {
		return err
	}
	defer closeClient(client)

	var payload []byte
	switch {
	case len(args) == 3:
		payload = []byte(args[2])
	case hasData && f.data == "@":
		// One byte over the limit is enough for Call to refuse the
		// request with RESOURCE_EXHAUSTED, naming the limit.
		payload, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), int64(client.Config().MaxMessageBytes)+1))
		if err != nil {
			return failure(fmt.Errorf("read the request from stdin: %w", err))
		}
	case hasData:
		payload = []byte(f.data)
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("{}")
	}

	ctx := cmd.Context()
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	opts := []vclient.CallOption{vclient.WithJSON()}
	if f.protoNames || f.emitDefaults {
		opts = append(opts, vclient.WithJSONOptions(f.protoNames, f.emitDefaults))
	}
	deadline := client.Config().Timeout.Request
	if f.timeout > 0 {
		deadline = f.timeout
	}
	// The notice is written before Call returns or not at all: never
	// interleaved with what follows.
	replied := make(chan struct{})
	var noticing sync.WaitGroup
	noticing.Go(func() {
		t := time.NewTimer(replyNoticeAfter)
		defer t.Stop()
		select {
		case <-replied:
			return
		case <-t.C:
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "vrpc: no reply yet after %v: the request waits on topic %s.%s until a vRPC server of target %q takes it, "+
			"or until its deadline (%v; --timeout, timeout.request). Is a server (vrpc serve) running for %q on this bus?\n",
			replyNoticeAfter, client.Config().Topics.Request, target, target, deadline, target)
	})
	resp, err := client.Call(ctx, target, method, payload, md, opts...)
	close(replied)
	noticing.Wait()
	if f.verbose && resp != nil {
		printMetadata(cmd.ErrOrStderr(), "Response headers received:", resp.Header)
		printMetadata(cmd.ErrOrStderr(), "Response trailers received:", resp.Trailer)
	}
	if err != nil {
		return reportStatus(cmd.ErrOrStderr(), err)
	}
	var out bytes.Buffer
	if json.Indent(&out, resp.Payload, "", "  ") != nil {
		out.Reset()
		out.Write(resp.Payload) // not JSON (a server that does not transcode): as is
	}
	out.WriteByte('\n')
	_, err = cmd.OutOrStdout().Write(out.Bytes())
	return err
}

// replyNoticeAfter is how long vrpc call waits for a reply before it says
// what it waits for.
const replyNoticeAfter = 3 * time.Second

// callMethod accepts grpcurl's "pkg.Svc.Method" besides the forms Call
// takes ("Method", "pkg.Svc/Method", "/pkg.Svc/Method").
func callMethod(m string) string {
	if !strings.Contains(m, "/") {
		if i := strings.LastIndexByte(m, '.'); i > 0 && i < len(m)-1 {
			return m[:i] + "/" + m[i+1:]
		}
	}
	return m
}

// parseHeaders turns -H "name: value" flags into request metadata. A
// name ending in -bin carries binary data, given in base64 as grpcurl
// takes it.
func parseHeaders(hs []string) (map[string]string, error) {
	if len(hs) == 0 {
		return nil, nil
	}
	md := make(map[string]string, len(hs))
	for _, h := range hs {
		k, v, ok := strings.Cut(h, ":")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return nil, fmt.Errorf(`-H %q: want "name: value"`, h)
		}
		v = strings.TrimSpace(v)
		if strings.HasSuffix(k, "-bin") {
			b, err := decodeBase64(v)
			if err != nil {
				return nil, fmt.Errorf("-H %q: a -bin header's value is base64: %v", h, err)
			}
			v = string(b)
		}
		if _, dup := md[k]; dup {
			return nil, fmt.Errorf("-H %q: header %q is given twice; vrpc call sends one value per name", h, k)
		}
		md[k] = v
	}
	return md, nil
}

func decodeBase64(s string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// printMetadata writes md as grpcurl -v does: a title, then "name: value"
// lines sorted by name (binary values in base64), or "(empty)".
func printMetadata(w io.Writer, title string, md metadata.MD) {
	fmt.Fprintf(w, "\n%s\n", title)
	if len(md) == 0 {
		fmt.Fprintln(w, "(empty)")
		return
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range md[k] {
			if strings.HasSuffix(k, "-bin") {
				v = base64.StdEncoding.EncodeToString([]byte(v))
			}
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
}

// reportStatus prints a failed call's status in grpcurl's format and ends
// the command with status 1.
func reportStatus(w io.Writer, err error) error {
	st := status.Convert(err)
	fmt.Fprintf(w, "ERROR:\n  Code: %s\n  Message: %s\n", st.Code(), st.Message())
	if details := st.Proto().GetDetails(); len(details) > 0 {
		fmt.Fprintln(w, "  Details:")
		for i, d := range details {
			prefix := fmt.Sprintf("  %d)", i+1)
			text := fmt.Sprintf(`{"@type": %q}`, d.GetTypeUrl()) // a type this binary does not know
			if b, err := (protojson.MarshalOptions{Multiline: true, Indent: "  "}).Marshal(d); err == nil {
				text = string(b)
			}
			for j, line := range strings.Split(text, "\n") {
				if j > 0 {
					prefix = strings.Repeat(" ", len(prefix))
				}
				fmt.Fprintf(w, "%s\t%s\n", prefix, line)
			}
		}
	}
	return errReported
}

// usageError is a bad command line: exit status 2 with a pointer to help.
func usageError(cmd *cobra.Command, err error) error {
	return &exitError{exitUsage, fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())}
}

// addClientConfigFlag adds -f for the client configuration file.
func addClientConfigFlag(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVarP(file, "file", "f", "",
		"client configuration file (default: $"+vrpc.ConfigEnv+", else client.yaml or etc/client.yaml if present, else Kafka on 127.0.0.1:9092)")
}

// openClient loads the client configuration, found as vrpc.InitClient
// finds it, and opens a client on it. Its errors end the command with
// status 69 when the bus did not answer within timeout.connect, else 2:
// the configuration is invalid or cannot be set up.
func openClient(file string) (*vclient.Client, error) {
	if file == "" {
		file = os.Getenv(vrpc.ConfigEnv)
	}
	if file == "" {
		for _, f := range []string{"client.yaml", "etc/client.yaml"} {
			if _, err := os.Stat(f); err == nil {
				file = f
				break
			}
		}
	}
	var cfg vrpc.ClientConfig
	if file != "" {
		if err := vrpc.LoadClientConfig(file, &cfg); err != nil {
			return nil, loadError(err, "example/client.yaml")
		}
	}
	c, err := vclient.New(cfg)
	if err != nil {
		switch {
		case rpcbus.Unreachable(err):
			return nil, unavailable(err)
		case errors.Is(err, rpcbus.ErrRefused):
			// The bus answered: its refusal names the fix, which may be
			// on the brokers rather than in the file.
			err = fmt.Errorf("the bus refused the client: %w", err)
		case file != "":
			err = fmt.Errorf("client config %s: %w", file, err)
		}
		return nil, configError(err)
	}
	return c, nil
}

// closeClient closes c; the command's outcome is already decided, so a
// failure to close is only logged.
func closeClient(c *vclient.Client) {
	if err := c.Close(); err != nil {
		logx.Errorf("vrpc: close the client: %v", err)
	}
}
