package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/zeromicro/go-zero/core/logx"
)

// logxHandler is the slog.Handler the command installs as slog's default:
// the library packages log through slog, the command through go-zero's
// logx, and both end up in the same stream on stderr, in logx's format.
type logxHandler struct {
	level slog.Level
	attrs string // " k=v" for each attribute of WithAttrs
	group string // "g." prefix of WithGroup
}

func (h *logxHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *logxHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s%s=%v", h.group, a.Key, a.Value)
		return true
	})
	switch {
	case r.Level >= slog.LevelError:
		logx.Error(b.String())
	case r.Level >= slog.LevelInfo:
		logx.Info(b.String())
	default:
		logx.Debug(b.String())
	}
	return nil
}

func (h *logxHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		fmt.Fprintf(&b, " %s%s=%v", h.group, a.Key, a.Value)
	}
	c.attrs = b.String()
	return &c
}

func (h *logxHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group += name + "."
	return &c
}
