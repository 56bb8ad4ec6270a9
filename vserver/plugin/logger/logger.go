package logger

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

// Name is the plugin's name in the server configuration.
const Name = "logger"

func init() {
	plugin.RegisterBuilder(Name, func(env plugin.Env, m map[string]any) (plugin.Plugin, error) {
		log := env.Logger
		if log == nil {
			log = slog.Default()
		}
		return build(log, m)
	})
}

// settings are the plugin's settings (the package doc shows them in YAML).
type settings struct {
	// Level: debug logs every call, info logs every call, error logs only
	// failed calls. Default info.
	Level string `json:"level"`
	// Sample is the share of successful calls logged, from 0 to 1 (0.1:
	// about one in ten). Failed calls are always logged. Default 1.
	Sample float64 `json:"sample"`
}

// New builds the logger plugin's middleware from its settings, strictly:
// an unknown key or a value of the wrong type is an error naming the key.
// Its lines go to slog.Default(); in a server, to the server's logger
// (vserver.WithLogger).
func New(m map[string]any) (plugin.Middleware, error) { return build(slog.Default(), m) }

func build(log *slog.Logger, m map[string]any) (plugin.Middleware, error) {
	s := settings{Level: "info", Sample: 1}
	if err := plugin.DecodeSettings(m, &s); err != nil {
		return nil, err
	}
	if !(s.Sample >= 0 && s.Sample <= 1) {
		return nil, fmt.Errorf("settings.sample %v: want a share from 0 to 1, such as 0.1", s.Sample)
	}
	var errorsOnly bool
	switch s.Level {
	case "debug", "info":
	case "error":
		errorsOnly = true
	default:
		return nil, fmt.Errorf("settings.level %q: want debug, info or error", s.Level)
	}
	return func(next plugin.Handler) plugin.Handler {
		return func(ctx context.Context, call *plugin.Call) *plugin.Result {
			res := next(ctx, call)
			code := codes.OK
			if res.Status != nil {
				code = res.Status.Code()
			}
			if code == codes.OK && (errorsOnly || s.Sample < 1 && rand.Float64() >= s.Sample) {
				return res
			}
			level := slog.LevelInfo
			if code != codes.OK {
				level = slog.LevelError
			}
			if !log.Enabled(ctx, level) {
				return res
			}
			log.Log(ctx, level, callLine(trace.SpanContextFromContext(ctx), call, code, res))
			return res
		}
	}, nil
}

// callLine is the log line of a call, built without fmt: at info every
// call is logged, so this is on the hot path.
func callLine(sc trace.SpanContext, call *plugin.Call, code codes.Code, res *plugin.Result) string {
	b := make([]byte, 0, 192)
	b = append(b, "vrpc call id="...)
	b = plugin.AppendClip(b, call.ID)
	b = append(b, " client="...)
	b = plugin.AppendClip(b, call.ClientID)
	b = append(b, " target="...)
	b = plugin.AppendClip(b, call.Target)
	b = append(b, " method="...)
	b = plugin.AppendClip(b, call.Method)
	b = append(b, " code="...)
	b = append(b, code.String()...)
	b = append(b, " queue="...)
	b = appendDuration(b, call.QueueTime())
	b = append(b, " target_time="...)
	b = appendDuration(b, res.TargetTime)
	if sc.IsValid() {
		id := sc.TraceID()
		b = append(b, " trace="...)
		b = hex.AppendEncode(b, id[:])
	}
	if code != codes.OK {
		b = append(b, " message="...)
		b = strconv.AppendQuote(b, res.Status.Message())
	}
	return string(b)
}

// appendDuration writes d rounded to the microsecond, as Duration.String.
func appendDuration(b []byte, d time.Duration) []byte {
	return append(b, d.Round(time.Microsecond).String()...)
}
