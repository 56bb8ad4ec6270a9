// Command vrpc runs vRPC: a server that carries gRPC calls from a message
// queue to their targets (vrpc serve), a one-command demo of every way to
// call through it (vrpc demo) and a benchmark of what it costs (vrpc bench).
//
// Exit status: 0 on success, 1 when a run failed, 2 for a bad command
// line or a configuration that is invalid or cannot be set up, 69
// (EX_UNAVAILABLE, as in sysexits.h) when a one-shot command (call, list)
// could not reach the bus within timeout.connect, whatever the bus. Logs go to
// stderr through go-zero's logx; the library packages log through slog,
// whose default handler the command points at logx.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/zeromicro/go-zero/core/logx"

	"github.com/nextpkg/vrpc"
	_ "github.com/nextpkg/vrpc/rpcbus/all"             // every rpc_bus.type
	_ "github.com/nextpkg/vrpc/vserver/plugin/tracing" // plugins: tracing
	_ "github.com/nextpkg/vrpc/vserver/redisdedup"     // dedup.store redis
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitUnavailable is sysexits.h's EX_UNAVAILABLE: the bus did not
	// answer within timeout.connect. The same on every bus.
	exitUnavailable = 69
)

// exitError carries the exit status an error should end the process with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// configError is a configuration that is invalid or cannot be set up.
func configError(err error) error { return &exitError{exitUsage, err} }

// loadError is configError for a configuration file that could not be
// loaded; a file that does not exist gets a hint: the examples are under
// example/, not where a fresh clone runs the commands.
func loadError(err error, example string) error {
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w (give one with -f, such as -f %s in this repository)", err, example)
	}
	return configError(err)
}

// unavailable is a bus that could not be reached in time.
func unavailable(err error) error { return &exitError{exitUnavailable, err} }

// failure is a run that went wrong.
func failure(err error) error { return &exitError{exitFailure, err} }

// errReported ends the process with status 1 when the failure has already
// been reported on stdout.
var errReported = &exitError{exitFailure, errors.New("")}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee != errReported {
			fmt.Fprintf(stderr, "vrpc: %v\n", err)
		}
		return ee.code
	}
	// Errors of cobra itself: unknown command, bad flag or argument.
	fmt.Fprintf(stderr, "vrpc: %v\nRun 'vrpc --help' for usage.\n", err)
	return exitUsage
}

// logLevelAnnotation holds a command's default --log-level.
const logLevelAnnotation = "vrpc-log-level"

func newRootCmd(stderr io.Writer) *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:   "vrpc",
		Short: "vRPC carries unary gRPC calls over a message queue",
		Long: `vRPC carries unary gRPC calls over a message queue (Kafka by default).

A caller keeps its gRPC code and adds the vRPC client; each call is published
on the bus, a vRPC server consumes it, forwards the request bytes to the real
gRPC target and publishes the reply back to the caller.

Start with 'vrpc demo': it needs nothing but Go.

Servers (serve) and the gateway may start before their bus: they wait for it,
saying what they wait for. One-shot commands (call, list) wait up to the
client's timeout.connect (default 5s).

Exit status: 0 success; 1 a failed run (a call that returned an error);
2 a bad command line or configuration; 69 (EX_UNAVAILABLE) the bus did not
answer within timeout.connect, on every bus.`,
		Example: `  vrpc demo                                   # try it: every way to call, in one process
  vrpc serve -f /etc/vrpc/server.yaml         # the server
  vrpc call -f client.yaml demo Ping '{"message": "hi"}'
  vrpc version                                # versions for a bug report`,
		Version:       vrpc.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level := logLevel
			if level == "" {
				level = cmd.Annotations[logLevelAnnotation]
			}
			return setupLogs(stderr, level)
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "",
		"log level on stderr: debug, info, error or severe (default: info for serve, error otherwise)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &exitError{exitUsage, fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())}
	})
	root.AddCommand(newVersionCmd(), newServeCmd(), newDemoCmd(), newBenchCmd(), newCallCmd(), newListCmd())
	root.AddCommand(newGatewayCmd(), newKeygenCmd())
	return root
}

// setupLogs sends logx's output, in plain text, to stderr at level, and
// slog's (the library's) through logx. Only the command sets up logging
// for the process; the library packages never do.
func setupLogs(stderr io.Writer, level string) error {
	var (
		l  uint32
		sl slog.Level
	)
	switch level {
	case "debug":
		l, sl = logx.DebugLevel, slog.LevelDebug
	case "info", "":
		l, sl = logx.InfoLevel, slog.LevelInfo
	case "error":
		l, sl = logx.ErrorLevel, slog.LevelError
	case "severe":
		l, sl = logx.SevereLevel, slog.LevelError+4
	default:
		return &exitError{exitUsage, fmt.Errorf("--log-level %q: want debug, info, error or severe", level)}
	}
	// SetUp takes effect once per process; the calls after it set the
	// level and writer themselves.
	_ = logx.SetUp(logx.LogConf{Mode: "console", Encoding: "plain", Level: "info"})
	logx.DisableStat()
	logx.SetLevel(l)
	logx.SetWriter(logx.NewWriter(stderr))
	slog.SetDefault(slog.New(&logxHandler{level: sl}))
	// go-redis logs each failed dial of its pool to stderr on its own (a
	// screenful while a Redis bus is down); the bus reports what matters.
	redis.SetLogger(redisLogger{})
	return nil
}

// redisLogger sends go-redis's own log lines to logx at debug level.
type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	logx.Debugf("redis: "+format, v...)
}
