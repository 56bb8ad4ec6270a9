package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/inproc"
)

type demoFlags struct {
	bus     string
	brokers []string
	timeout time.Duration
}

func newDemoCmd() *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Call a demo gRPC service through vRPC in every supported style",
		Long: `Run a whole vRPC deployment in this process and call through it.

The demo starts an in-process Kafka broker (franz-go's kfake) on 127.0.0.1, a
demo gRPC service (demo.Demo/Ping, which knows nothing of vRPC) on a loopback
port, a vRPC server forwarding target "demo" to it, and a vRPC client. It then
calls Ping through the queue in each way a program can:

  (a) a grpc-go conn dialled to vrpc:///demo with vrpc.Interceptor()
  (b) a plain grpc-go conn with grpc.WithUnaryInterceptor(vrpc.Interceptor(vrpc.WithTarget("demo")))
  (c) vrpc.GetClient().Call with the request's protobuf bytes and metadata,
      by short method name and by full name, and with a JSON payload, which
      the server transcodes through the target's reflection service
  (d) generated stubs on vrpc.NewConn("demo"), with no gRPC conn at all
  (e) a call that fails on purpose with the target's own INVALID_ARGUMENT

and prints, for each, the reply, the gRPC status code and the latency. Then it
shuts everything down gracefully. It exits 1 if any call ends with another
status than the one shown as expected.

With --bus kafka it uses running brokers instead (--brokers, default
127.0.0.1:9092); with --bus memory, the in-memory bus.`,
		Example: `  vrpc demo
  vrpc demo --brokers 127.0.0.1:19092
  vrpc demo --bus kafka --brokers localhost:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), f)
		},
		Annotations: map[string]string{logLevelAnnotation: "error"},
	}
	cmd.Flags().StringVar(&f.bus, "bus", inproc.BusEmbedded, "bus: embedded (in-process Kafka), kafka (running brokers) or memory")
	cmd.Flags().StringSliceVar(&f.brokers, "brokers", nil,
		"embedded: the address the broker listens on (default 127.0.0.1 and a free port); kafka: the brokers (default 127.0.0.1:9092); memory: the bus's name")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 5*time.Second, "deadline of each call")
	return cmd
}

// demoCall is one call the demo makes.
type demoCall struct {
	label string
	code  string // how the call is written
	want  codes.Code
	// run makes the call and describes its reply.
	run func(ctx context.Context) (reply string, err error)
}

func runDemo(ctx context.Context, out io.Writer, f demoFlags) (err error) {
	switch f.bus {
	case inproc.BusEmbedded, inproc.BusKafka, inproc.BusMemory:
	default:
		return configError(fmt.Errorf("--bus %q: want one of %s", f.bus, strings.Join(inproc.Buses, ", ")))
	}
	began := time.Now()
	fmt.Fprintln(out, "vRPC demo: unary gRPC calls through a message queue")
	d, err := inproc.Start(ctx, inproc.Options{Bus: f.bus, Brokers: f.brokers, ServerName: "vrpc-demo", TargetTimeout: "10s"})
	if err != nil {
		return failure(err)
	}
	fmt.Fprintf(out, "  bus     %s\n", d.BusInfo)
	fmt.Fprintf(out, "  target  %q = demo.Demo gRPC service on %s (plain grpc-go, knows nothing of vRPC)\n", d.Target, d.TargetAddr)
	fmt.Fprintf(out, "  server  vrpc-demo: consumes %s, forwards to the target\n", strings.Join(d.Server.Topics(), ", "))

	closeDeployment := func() {
		t := time.Now()
		if cerr := vrpc.Close(); cerr != nil && err == nil {
			err = failure(fmt.Errorf("close the vRPC client: %w", cerr))
		}
		if cerr := d.Close(); cerr != nil && err == nil {
			err = failure(fmt.Errorf("stop the deployment: %w", cerr))
		}
		fmt.Fprintf(out, "\nShut down gracefully in %v (whole demo %v).\n", round(time.Since(t)), round(time.Since(began)))
	}
	if err := vrpc.InitClient(vrpc.WithConfig(vrpc.ClientConfig{ClientID: "vrpc-demo", RpcBus: d.Bus})); err != nil {
		_ = d.Close()
		return failure(fmt.Errorf("start the vRPC client: %w", err))
	}
	defer closeDeployment()
	fmt.Fprintf(out, "  client  vrpc-demo: publishes to %s, replies come back on %s\n\n", d.Server.Topics()[0], vrpc.GetClient().ReplyAddress())

	// (a) the recommended style: a conn to vrpc:///<target>, which the
	// root package's resolver points at the process-wide client, and the
	// interceptor. A go-zero zrpc client dialled the same way works alike
	// (example/interceptor); the command does not link zrpc, which would
	// bring its Kubernetes and etcd resolvers into the binary.
	vc, err := grpc.NewClient("vrpc:///"+d.Target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(vrpc.Interceptor()))
	if err != nil {
		return failure(fmt.Errorf("grpc client for vrpc:///%s: %w", d.Target, err))
	}
	defer vc.Close()
	viaTarget := demo.NewDemoClient(vc)

	// (b) plain grpc-go: an existing conn (dialled wherever; the calls
	// never use it) gets the interceptor.
	gc, err := grpc.NewClient("localhost:8081", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(vrpc.Interceptor(vrpc.WithTarget(d.Target))))
	if err != nil {
		return failure(fmt.Errorf("grpc client: %w", err))
	}
	defer gc.Close()
	viaGRPC := demo.NewDemoClient(gc)

	// (d) generated stubs with no conn at all.
	viaConn := demo.NewDemoClient(vrpc.NewConn(d.Target))

	ping := func(c demo.DemoClient, msg string) func(ctx context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			var header metadata.MD
			resp, err := c.Ping(ctx, &demo.Request{Message: msg}, grpc.Header(&header))
			if err != nil {
				return "", err
			}
			return describe(resp, header), nil
		}
	}
	call := func(method string, payload []byte) func(ctx context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			resp, err := vrpc.GetClient().Call(ctx, d.Target, method, payload, map[string]string{"user-id": "12345"})
			if err != nil {
				return "", err
			}
			var r demo.Response
			if err := proto.Unmarshal(resp.Payload, &r); err != nil {
				return "", status.Errorf(codes.Internal, "decode the reply: %v", err)
			}
			return describe(&r, resp.Header), nil
		}
	}
	callJSON := func(method string, payload []byte) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			resp, err := vrpc.GetClient().Call(ctx, d.Target, method, payload, nil)
			if err != nil {
				return "", err
			}
			return "json " + string(resp.Payload), nil
		}
	}
	payload, err := proto.Marshal(&demo.Request{Message: "hello via Call"})
	if err != nil {
		return failure(err)
	}
	calls := []demoCall{
		{"(a)  grpc-go conn, target vrpc:///demo",
			`grpc.NewClient("vrpc:///demo", creds, grpc.WithUnaryInterceptor(vrpc.Interceptor()))`,
			codes.OK, ping(viaTarget, "hello via vrpc:///demo")},
		{"(b)  grpc-go conn + interceptor (the conn itself is never used)",
			`grpc.NewClient("localhost:8081", creds, grpc.WithUnaryInterceptor(vrpc.Interceptor(vrpc.WithTarget("demo"))))`,
			codes.OK, ping(viaGRPC, "hello via grpc-go")},
		{"(c1) direct call, short method name",
			`vrpc.GetClient().Call(ctx, "demo", "Ping", protoBytes, map[string]string{"user-id": "12345"})`,
			codes.OK, call("Ping", payload)},
		{"(c2) direct call, full method name",
			`vrpc.GetClient().Call(ctx, "demo", "/demo.Demo/Ping", protoBytes, map[string]string{"user-id": "12345"})`,
			codes.OK, call("/demo.Demo/Ping", payload)},
		{"(c3) direct call, JSON payload",
			`vrpc.GetClient().Call(ctx, "demo", "Ping", []byte(` + "`" + `{"message": "Hello vRPC"}` + "`" + `), nil)`,
			codes.OK, callJSON("Ping", []byte(`{"message": "Hello vRPC"}`))},
		{"(d)  generated stubs on vrpc.NewConn",
			`demo.NewDemoClient(vrpc.NewConn("demo")).Ping(ctx, req)`,
			codes.OK, ping(viaConn, "hello via NewConn")},
		{"(e)  the target's own error status",
			`demo.NewDemoClient(vrpc.NewConn("demo")).Ping(ctx, &demo.Request{Message: ""})`,
			codes.InvalidArgument, ping(viaConn, "")},
	}

	unexpected := 0
	for _, c := range calls {
		cctx, cancel := context.WithTimeout(ctx, f.timeout)
		start := time.Now()
		reply, err := c.run(cctx)
		latency := time.Since(start)
		cancel()
		got := status.Code(err)
		verdict := "as expected"
		if got != c.want {
			unexpected++
			verdict = "UNEXPECTED, want " + codeName(c.want)
		}
		fmt.Fprintf(out, "%s\n     %s\n", c.label, c.code)
		if err != nil {
			reply = fmt.Sprintf("error %q", status.Convert(err).Message())
		}
		fmt.Fprintf(out, "     status %s (%s)  latency %v\n     reply  %s\n\n", codeName(got), verdict, round(latency), reply)
		if ctx.Err() != nil {
			return failure(ctx.Err())
		}
	}
	if unexpected > 0 {
		fmt.Fprintf(out, "%d of %d calls ended with an unexpected status.\n", unexpected, len(calls))
		return errReported
	}
	fmt.Fprintf(out, "All %d calls ended with the expected status.\n", len(calls))
	return nil
}

func describe(r *demo.Response, header metadata.MD) string {
	s := fmt.Sprintf("message=%q served_by=%q", r.GetMessage(), r.GetServedBy())
	if v := header.Get("x-served-by"); len(v) > 0 {
		s += fmt.Sprintf(" header x-served-by=%q", v[0])
	}
	return s
}

// codeName is the canonical name of a gRPC code, as in google.rpc.Code.
func codeName(c codes.Code) string { return rpccode.Code(c).String() }

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
