package nats

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/nextpkg/vrpc/rpcbus"
)

// inboxPrefix starts every inbox address. Publish sends to such a subject
// with core NATS instead of JetStream, and no stream is ever created for
// one. It lies under NATS's usual "_INBOX." so that an account whose
// permissions already allow reply inboxes allows these too.
const inboxPrefix = "_INBOX.vrpc."

// keeperName is the consumer that keeps a topic's messages while it has no
// group (see "Retention" in the package documentation). Names made by
// safeName always end in a hash, so no group can be given it.
const keeperName = "vrpc_keeper"

// isInbox reports whether topic is an inbox address.
func isInbox(topic string) bool { return strings.HasPrefix(topic, inboxPrefix) }

// checkSubject returns an error unless name can be a NATS subject made of
// rpcbus.ValidName characters: no empty token between dots.
func checkSubject(what, name string) error {
	if !rpcbus.ValidName(name) {
		return fmt.Errorf("%s %q: use 1 to 200 letters, digits, '.', '_' and '-'", what, name)
	}
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return fmt.Errorf("%s %q: a NATS subject cannot have an empty part between dots", what, name)
	}
	return nil
}

// checkTopic returns an error unless topic can be a request topic: a
// subject outside the inbox namespace.
func checkTopic(topic string) error {
	if err := checkSubject("topic", topic); err != nil {
		return err
	}
	if isInbox(topic) {
		return fmt.Errorf("topic %q: names under %q are inbox addresses, not topics", topic, inboxPrefix)
	}
	return nil
}

// streamName is the JetStream stream of topic. Stream names cannot hold
// '.', so the name is made readable with '_' and unique with a hash of
// the exact topic: "vrpc.requests.demo" → "vrpc_vrpc_requests_demo_<hash>".
func streamName(topic string) string { return "vrpc_" + safeName(topic) }

// consumerName is the durable consumer of group on every topic it reads.
func consumerName(group string) string { return safeName(group) }

// safeName maps s to a name JetStream accepts for streams and consumers
// (letters, digits, '_' and '-'), readable and, through the hash of s,
// distinct for distinct s.
func safeName(s string) string {
	const readable = 64
	var b strings.Builder
	b.Grow(min(len(s), readable) + 17)
	for i := 0; i < len(s) && i < readable; i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	b.WriteByte('_')
	sum := strconv.FormatUint(h.Sum64(), 16)
	b.WriteString(strings.Repeat("0", 16-len(sum)))
	b.WriteString(sum)
	return b.String()
}
