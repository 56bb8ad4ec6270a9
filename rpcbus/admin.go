package rpcbus

import (
	"context"
	"net/url"
	"strings"
)

// Addresser is implemented by buses that can say which servers they talk
// to. Addresses returns them as people should see them: with any password
// or token redacted (see RedactAddress), so that /debug/vrpc and logs may
// show them. A bus connected to one of several servers lists that one
// first.
type Addresser interface {
	Addresses() []string
}

// redacted replaces a password or token in an address.
const redacted = "xxxxx"

// RedactAddress returns addr with the credentials it may carry replaced by
// "xxxxx": the password of a URL's or of a bare "user:password@host"
// user information, and a user alone (NATS takes "nats://token@host" for a
// token). Anything else is returned as it is.
func RedactAddress(addr string) string {
	if !strings.Contains(addr, "@") {
		return addr
	}
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				return u.Redacted()
			}
			u.User = url.User(redacted)
			return u.String()
		}
		if err == nil {
			return addr
		}
	}
	// user:password@host, or a URL that does not parse: keep what follows
	// the last '@' and the scheme, if any.
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		scheme, rest = "", addr
	}
	at := strings.LastIndexByte(rest, '@')
	user, host := rest[:at], rest[at+1:]
	if name, _, ok := strings.Cut(user, ":"); ok {
		user = name + ":" + redacted
	} else {
		user = redacted
	}
	if scheme != "" {
		return scheme + "://" + user + "@" + host
	}
	return user + "@" + host
}

// RedactAddresses is RedactAddress of each of addrs.
func RedactAddresses(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = RedactAddress(a)
	}
	return out
}

// Leftovers names what a run (a test, a benchmark, `vrpc demo`) left on a
// bus's servers, for Remover.
type Leftovers struct {
	// Topics are the topics the run published to or consumed.
	Topics []string
	// Groups are the consumer groups that consumed them.
	Groups []string
	// Prefix, if not empty, starts the name of every topic the run used.
	// Buses that can list their topics (NATS, Redis) remove every one
	// under it too, so that topics made on the run's behalf (a
	// dead-letter topic, an inbox) go as well.
	Prefix string
}

// Remover is implemented by buses that keep state on their servers between
// runs: streams, queues, keys, sessions. Remove deletes what the bus made
// there for l's topics and groups, with the bus's own naming and
// credentials, so that callers need not know either. Nothing may still use
// them: messages they hold are lost. What is already gone is not an error.
type Remover interface {
	Remove(ctx context.Context, l Leftovers) error
}
