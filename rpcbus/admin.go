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

// Describe names a bus for messages: its type and its servers, redacted,
// as bus reports them (Addresser) or else as cfg gives them.
func Describe(cfg Config, bus Bus) string {
	addrs := RedactAddresses(cfg.Brokers)
	if a, ok := bus.(Addresser); ok {
		addrs = a.Addresses()
	}
	if len(addrs) == 0 {
		return cfg.Type + " bus (its default address)"
	}
	return cfg.Type + " bus at " + strings.Join(addrs, ", ")
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

// secretKeys are the words that make a settings key secret: its value is
// masked wherever settings are shown.
var secretKeys = []string{"password", "secret", "token", "sasl", "passphrase", "credential"}

// SecretKey reports whether a settings key names a secret: it contains
// password, secret, token, sasl, passphrase or credential, in any case.
// (A file name such as creds_file or tls_key_file is not secret itself.)
func SecretKey(key string) bool {
	k := strings.ToLower(key)
	for _, w := range secretKeys {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// RedactSettings returns a copy of settings fit to show in a log or a
// debug page: the value of every SecretKey is "xxxxx" (when not empty),
// and every string value that is an address with credentials (a URL, or
// user:password@host) goes through RedactAddress.
// Nested maps and lists are redacted too; settings itself is not changed.
func RedactSettings(settings map[string]any) map[string]any {
	if settings == nil {
		return nil
	}
	out := make(map[string]any, len(settings))
	for k, v := range settings {
		if SecretKey(k) && v != nil && v != "" {
			out[k] = redacted
			continue
		}
		out[k] = redactValue(v)
	}
	return out
}

func redactValue(v any) any {
	switch v := v.(type) {
	case string:
		// An address with credentials: a URL, or user:password@host. A
		// bare name@host (an e-mail address as a user name) is left.
		if at := strings.LastIndexByte(v, '@'); at > 0 && (strings.Contains(v, "://") || strings.Contains(v[:at], ":")) {
			return RedactAddress(v)
		}
		return v
	case map[string]any:
		return RedactSettings(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = redactValue(e)
		}
		return out
	case []string:
		return RedactAddresses(v)
	}
	return v
}

// RedactError returns err with each of addrs that its message quotes
// replaced by RedactAddress of it: a client library's error may quote the
// URL it was given, password and all. errors.Is and errors.As still see
// err. It returns err itself when there is nothing to redact.
func RedactError(err error, addrs []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, a := range addrs {
		if r := RedactAddress(a); r != a {
			clean = strings.ReplaceAll(clean, a, r)
		}
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// GroupLister is implemented by buses that can tell which consumer groups
// consume a topic now. ListGroups returns their names, sorted. A server
// uses it at start to warn when a group of another name serves one of its
// request topics: every group gets every request, so both would execute
// each one.
type GroupLister interface {
	ListGroups(ctx context.Context, topic string) ([]string, error)
}
