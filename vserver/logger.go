package vserver

import (
	"context"
	"fmt"
	"time"

	"github.com/zeromicro/go-zero/core/logx"
	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/internal/settings"
)

func init() { RegisterPlugin("logger", newLogger) }

type loggerSettings struct {
	// Level: debug logs every call, info logs every call, error logs only
	// failed calls.
	Level string `json:"level"`
}

// newLogger builds the logger plugin: one line per call with the request
// id, client id, target, method, status code, time in the queue and time
// at the target, through go-zero's logx.
func newLogger(m map[string]any) (Middleware, error) {
	s := loggerSettings{Level: "info"}
	if err := settings.Decode("settings", m, &s); err != nil {
		return nil, err
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
			if errorsOnly && code == codes.OK {
				return res
			}
			queue := call.ReceivedAt.Sub(call.SentAt)
			line := fmt.Sprintf("vrpc call id=%s client=%s target=%s method=%s code=%s queue=%s target_time=%s",
				call.ID, call.ClientID, call.Target, call.Method, code, queue.Round(time.Microsecond), res.TargetTime.Round(time.Microsecond))
			if code != codes.OK {
				logx.WithContext(ctx).Errorf("%s message=%q", line, res.Status.Message())
			} else {
				logx.WithContext(ctx).Info(line)
			}
			return res
		}
	}, nil
}
