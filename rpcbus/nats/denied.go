package nats

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"

	natsgo "github.com/nats-io/nats.go"

	"github.com/nextpkg/vrpc/rpcbus"
)

// The server tells of a publish its permissions deny asynchronously, as an
// -ERR naming the subject; the request waiting for the stream's ack would
// wait for its deadline. deniedWatch passes the -ERR to the publishes of
// that subject.
var publishDenied = regexp.MustCompile(`Permissions Violation for Publish to "([^"]+)"`)

// deniedWatch holds, for each subject published to with an ack, a context
// cancelled when the server denies a publish to it.
type deniedWatch struct {
	mu       sync.Mutex
	subjects map[string]*denial
}

type denial struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// maxWatched bounds the subjects watched; past it the watch starts over
// (publishes waiting then see only their deadline).
const maxWatched = 10000

// of returns the context cancelled at the next denial of a publish to
// subject.
func (w *deniedWatch) of(subject string) context.Context {
	w.mu.Lock()
	defer w.mu.Unlock()
	d, ok := w.subjects[subject]
	if !ok {
		if w.subjects == nil || len(w.subjects) >= maxWatched {
			w.subjects = make(map[string]*denial)
		}
		d = &denial{}
		d.ctx, d.cancel = context.WithCancelCause(context.Background())
		w.subjects[subject] = d
	}
	return d.ctx
}

// note takes an asynchronous error of the connection: a denied publish
// cancels the subject's context, with the refusal as its cause, and a new
// one is watched from then on (permissions may change with a server
// reload).
func (w *deniedWatch) note(err error, user string) {
	if !errors.Is(err, natsgo.ErrPermissionViolation) {
		return
	}
	m := publishDenied.FindStringSubmatch(err.Error())
	if m == nil {
		return
	}
	w.mu.Lock()
	d, ok := w.subjects[m[1]]
	delete(w.subjects, m[1])
	w.mu.Unlock()
	if ok {
		d.cancel(fmt.Errorf("%w: the NATS server's permissions do not let %s publish to %q: add it to the user's "+
			"permissions.publish.allow in the server's authorization block (vRPC's clients publish to the request "+
			"subjects and $JS.API.>, servers to the _INBOX.vrpc.> reply subjects): %w",
			rpcbus.ErrForbidden, user, m[1], err))
	}
}

// close cancels every watched context.
func (w *deniedWatch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.subjects {
		d.cancel(context.Canceled)
	}
	w.subjects = nil
}
