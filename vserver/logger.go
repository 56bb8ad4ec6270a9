package vserver

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/zeromicro/go-zero/core/logx"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/internal/settings"
)

func init() { RegisterPlugin("logger", newLogger) }

type loggerSettings struct {
	// Level: debug logs every call, info logs every call, error logs only
	// failed calls.
	Level string `json:"level"`
	// Sample is the share of successful calls logged, from 0 to 1 (0.1:
	// about one in ten). Failed calls are always logged.
	Sample float64 `json:"sample"`
}

// newLogger builds the logger plugin: one line per call with the request
// id, client id, target, method, status code, time in the queue and time
// at the target, through go-zero's logx. When the tracing plugin runs
// before it, the line ends with the trace id.
func newLogger(m map[string]any) (Middleware, error) {
	s := loggerSettings{Level: "info", Sample: 1}
	if err := settings.Decode("settings", m, &s); err != nil {
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
	return func(next Handler) Handler {
		return func(ctx context.Context, call *Call) *Result {
			res := next(ctx, call)
			code := codes.OK
			if res.Status != nil {
				code = res.Status.Code()
			}
			if code == codes.OK && (errorsOnly || s.Sample < 1 && rand.Float64() >= s.Sample) {
				return res
			}
			// Not logx.WithContext: its trace and span fields and the
			// logger it allocates add about a tenth to every line.
			line := callLine(trace.SpanContextFromContext(ctx), call, code, res)
			if code != codes.OK {
				logx.Errorv(line) // v: no fmt.Sprint copy of the line
			} else {
				logx.Infov(line)
			}
			return res
		}
	}, nil
}

// callLine is the log line of a call, built without fmt: at info every
// call is logged, so this is on the hot path.
func callLine(sc trace.SpanContext, call *Call, code codes.Code, res *Result) string {
	b := make([]byte, 0, 192)
	b = append(b, "vrpc call id="...)
	b = append(b, call.ID...)
	b = append(b, " client="...)
	b = append(b, call.ClientID...)
	b = append(b, " target="...)
	b = append(b, call.Target...)
	b = append(b, " method="...)
	b = append(b, call.Method...)
	b = append(b, " code="...)
	b = append(b, code.String()...)
	b = append(b, " queue="...)
	b = appendDuration(b, queueTime(call))
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
