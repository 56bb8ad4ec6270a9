// Package backoff is the one retry pause of vRPC: exponential, capped, with
// optional jitter, and always cut short by a context. Every loop that tries
// something again (a publish, a reconnect, a dead-letter, a call to a
// target) waits with it, so that they all behave, and read, the same.
//
//	bo := backoff.New(backoff.Policy{Initial: 10 * time.Millisecond, Max: time.Second, Jitter: true})
//	for {
//		err := publish(ctx)
//		if err == nil || permanent(err) {
//			return err
//		}
//		if !bo.Wait(ctx) {
//			return err // ctx is done
//		}
//	}
package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy is how the pauses between attempts grow.
type Policy struct {
	// Initial is the first pause; each later one doubles, up to Max.
	Initial time.Duration
	// Max caps the pause; zero or less than Initial means Initial.
	Max time.Duration
	// Jitter draws each pause uniformly from [d/2, d] instead of d, so that
	// many clients of one server that went down do not all come back at
	// the same instant.
	Jitter bool
}

// Backoff is the state of one retry loop. It is not safe for concurrent
// use; each loop makes its own with New.
type Backoff struct {
	p    Policy
	next time.Duration
}

// New starts a loop at p.Initial.
func New(p Policy) *Backoff {
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	return &Backoff{p: p, next: p.Initial}
}

// Next returns the pause before the next attempt and doubles the one after
// it, up to the policy's Max.
func (b *Backoff) Next() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.p.Max)
	if b.p.Jitter && d > 1 {
		d = d/2 + rand.N(d/2+1)
	}
	return d
}

// Reset starts the pauses again from Initial, after an attempt that
// succeeded in a loop that goes on (a connection that came up).
func (b *Backoff) Reset() { b.next = b.p.Initial }

// Wait sleeps for Next, and reports false, at once, when ctx is done first.
func (b *Backoff) Wait(ctx context.Context) bool {
	return Sleep(ctx, b.Next())
}

// Fits reports whether ctx's deadline, if it has one, leaves room for the
// next pause: a loop that would wake after its deadline can give up now.
// It does not advance the backoff.
func (b *Backoff) Fits(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return !ok || time.Until(d) >= b.next
}

// Sleep pauses for d, and reports false, at once, when ctx is done first.
func Sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Retry calls op until it returns nil or an error wrapped with Permanent,
// or ctx is done, pausing per p between attempts. It returns op's last
// error (unwrapped from Permanent), or nil; when ctx ends the loop before
// op has failed with anything but ctx's own error, that error is joined to
// ctx's, so the caller sees both why the attempts failed and why they
// stopped.
func Retry(ctx context.Context, p Policy, op func() error) error {
	b := New(p)
	for {
		err := op()
		if err == nil {
			return nil
		}
		var perm *permanent
		if errors.As(err, &perm) {
			return perm.err
		}
		if !b.Wait(ctx) {
			if errors.Is(err, ctx.Err()) {
				return err
			}
			return errors.Join(err, ctx.Err())
		}
	}
}

// Permanent marks err as not worth trying again: Retry returns it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }
