package kafka

import (
	"crypto/tls"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/nextpkg/vrpc/internal/settings"
)

// Defaults and bounds of rpc_bus.settings. See the package documentation.
const (
	defaultBroker          = "127.0.0.1:9092"
	defaultPartitions      = 4
	defaultMaxMessageBytes = 5 << 20
	minMaxMessageBytes     = 1 << 10
	// maxMaxMessageBytes keeps fetch buffers bounded and below franz-go's
	// default broker read and write limits (100 MiB).
	maxMaxMessageBytes = 64 << 20
	maxPartitions      = 10000
	// rebalanceTimeout is how long the group waits for members to rejoin;
	// revoke_timeout must leave room inside it.
	rebalanceTimeout = 60 * time.Second
)

// options are the decoded rpc_bus.settings of type kafka (and of type
// embedded, which takes them all).
type options struct {
	Compression       string            `json:"compression"`
	BatchSize         int               `json:"batch_size"`
	Linger            settings.Duration `json:"linger"`
	Acks              string            `json:"acks"`
	Partitions        int               `json:"partitions"`
	ReplicationFactor int               `json:"replication_factor"`
	MaxMessageBytes   int               `json:"max_message_bytes"`
	DialTimeout       settings.Duration `json:"dial_timeout"`
	SessionTimeout    settings.Duration `json:"session_timeout"`
	HeartbeatInterval settings.Duration `json:"heartbeat_interval"`
	RevokeTimeout     settings.Duration `json:"revoke_timeout"`
	FetchMaxWait      settings.Duration `json:"fetch_max_wait"`
	DeliveryTimeout   settings.Duration `json:"delivery_timeout"`
	// ReplyRetention is retention.ms of the reply topics inboxes create:
	// the replies of a client that died without closing its inbox are
	// deleted by the brokers after that long.
	ReplyRetention settings.Duration `json:"reply_retention"`

	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; with a
	// username and none set, PLAIN.
	SASLMechanism string `json:"sasl_mechanism"`
	Username      string `json:"username"`
	Password      string `json:"password"`

	settings.TLS

	tlsConfig *tls.Config    // from the tls_* keys, by validate
	sasl      sasl.Mechanism // from the sasl_* keys, by validate
}

func defaultOptions() options {
	return options{
		Compression:       "none",
		Acks:              "all",
		Partitions:        defaultPartitions,
		ReplicationFactor: -1,
		MaxMessageBytes:   defaultMaxMessageBytes,
		DialTimeout:       settings.Duration(10 * time.Second),
		SessionTimeout:    settings.Duration(45 * time.Second),
		HeartbeatInterval: settings.Duration(3 * time.Second),
		RevokeTimeout:     settings.Duration(10 * time.Second),
		// Not franz-go's 5s: a partition a member gains in a rebalance is
		// fetched only once the fetch in flight returns, so on a quiet topic
		// its requests would wait that long. 500ms is Kafka's own default.
		FetchMaxWait: settings.Duration(500 * time.Millisecond),
		// Kafka's delivery.timeout.ms is 2 minutes. A record outlives the
		// Publish that gave up on it (see Bus.Publish); this bounds how
		// long it is retried while the brokers are away.
		DeliveryTimeout: settings.Duration(time.Minute),
		ReplyRetention:  settings.Duration(time.Hour),
	}
}

// BrokerSettings are what a Kafka broker must agree with to serve the buses
// of one rpc_bus.settings map. Package embedded starts its broker with
// them.
type BrokerSettings struct {
	// MaxMessageBytes is max_message_bytes: the largest record the buses
	// send, which the broker must take.
	MaxMessageBytes int
	// SASLMechanism, Username and Password are the SASL user the buses log
	// in as; all empty when they do not.
	SASLMechanism, Username, Password string
	// TLS is true when the buses dial the brokers with TLS.
	TLS bool
}

// DecodeSettings checks m as type kafka's rpc_bus.settings, decoding
// strictly into them and, for the keys extra declares (a pointer to a
// struct with json tags; nil for none), into extra, and returns what a
// broker must agree with. A bad or unknown key is a *SettingError naming it.
func DecodeSettings(m map[string]any, extra any) (BrokerSettings, error) {
	o, err := decodeOptions(m, extra)
	if err != nil {
		return BrokerSettings{}, err
	}
	bs := BrokerSettings{MaxMessageBytes: o.MaxMessageBytes, TLS: o.tlsConfig != nil}
	if o.sasl != nil {
		bs.SASLMechanism, bs.Username, bs.Password = o.SASLMechanism, o.Username, o.Password
	}
	return bs, nil
}

// decodeOptions decodes m strictly into the kafka options and, for keys
// extra declares, into extra (nil for type kafka).
func decodeOptions(m map[string]any, extra any) (options, error) {
	o := defaultOptions()
	into := []any{&o}
	if extra != nil {
		into = append(into, extra)
	}
	if ke := settings.DecodeKeys(m, into...); ke != nil {
		return o, badSetting(ke.Key, "%v", ke.Err)
	}
	return o, o.validate()
}

func (o *options) validate() error {
	switch o.Compression {
	case "none", "gzip", "snappy", "lz4", "zstd":
	default:
		return badSetting("compression", "%q is not supported (want none, gzip, snappy, lz4 or zstd)", o.Compression)
	}
	switch o.Acks {
	case "all", "leader", "none":
	default:
		return badSetting("acks", "%q is not supported (want all, leader or none)", o.Acks)
	}
	if o.MaxMessageBytes < minMaxMessageBytes || o.MaxMessageBytes > maxMaxMessageBytes {
		return badSetting("max_message_bytes", "%d is out of range (want %d to %d bytes)",
			o.MaxMessageBytes, minMaxMessageBytes, maxMaxMessageBytes)
	}
	if o.BatchSize < 0 || o.BatchSize > o.MaxMessageBytes {
		return badSetting("batch_size", "%d is out of range (want 0 to max_message_bytes, %d: "+
			"a batch larger than the topics' max.message.bytes is refused by the broker)", o.BatchSize, o.MaxMessageBytes)
	}
	if l := time.Duration(o.Linger); l < 0 || l > time.Minute {
		return badSetting("linger", "%v is out of range (want 0 to 1m)", l)
	}
	if o.Partitions < 1 || o.Partitions > maxPartitions {
		return badSetting("partitions", "%d is out of range (want 1 to %d)", o.Partitions, maxPartitions)
	}
	if o.ReplicationFactor != -1 && (o.ReplicationFactor < 1 || o.ReplicationFactor > 32767) {
		return badSetting("replication_factor", "%d is out of range (want -1 for the broker's default, or 1 to 32767)", o.ReplicationFactor)
	}
	for _, d := range []struct {
		key      string
		v        settings.Duration
		min, max time.Duration
	}{
		{"dial_timeout", o.DialTimeout, time.Millisecond, time.Hour},
		{"session_timeout", o.SessionTimeout, 100 * time.Millisecond, time.Hour},
		{"heartbeat_interval", o.HeartbeatInterval, 10 * time.Millisecond, time.Hour},
		{"revoke_timeout", o.RevokeTimeout, time.Millisecond, rebalanceTimeout / 2},
		{"fetch_max_wait", o.FetchMaxWait, 10 * time.Millisecond, time.Minute},
		{"delivery_timeout", o.DeliveryTimeout, 100 * time.Millisecond, time.Hour},
		{"reply_retention", o.ReplyRetention, time.Second, 30 * 24 * time.Hour},
	} {
		if v := time.Duration(d.v); v < d.min || v > d.max {
			return badSetting(d.key, "%v is out of range (want %v to %v)", v, d.min, d.max)
		}
	}
	if o.HeartbeatInterval >= o.SessionTimeout {
		return badSetting("heartbeat_interval", "%v is not below session_timeout %v",
			time.Duration(o.HeartbeatInterval), time.Duration(o.SessionTimeout))
	}
	if err := o.buildSASL(); err != nil {
		return err
	}
	c, err := o.TLS.Config()
	if ke, ok := err.(*settings.KeyError); ok {
		return badSetting(ke.Key, "%v", ke.Err)
	}
	o.tlsConfig = c
	return nil
}

// buildSASL checks the sasl_mechanism, username and password keys and
// builds the mechanism they name, if any.
func (o *options) buildSASL() error {
	mech := strings.ToUpper(o.SASLMechanism)
	if mech == "" && o.Username != "" {
		mech = "PLAIN"
	}
	if mech == "" {
		if o.Password != "" {
			return badSetting("username", "is missing: password needs it")
		}
		return nil
	}
	if o.Username == "" {
		return badSetting("username", "is missing: sasl_mechanism %s needs a username and a password", mech)
	}
	switch mech {
	case "PLAIN":
		o.sasl = plain.Auth{User: o.Username, Pass: o.Password}.AsMechanism()
	case "SCRAM-SHA-256":
		o.sasl = scram.Auth{User: o.Username, Pass: o.Password}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		o.sasl = scram.Auth{User: o.Username, Pass: o.Password}.AsSha512Mechanism()
	default:
		return badSetting("sasl_mechanism", "%q is not supported (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", o.SASLMechanism)
	}
	o.SASLMechanism = mech
	return nil
}

// batchMaxBytes is the producer's batch cap; see "Batches" in the package
// documentation for why batch_size cannot lower it.
func (o *options) batchMaxBytes() int32 {
	return int32(max(o.BatchSize, o.MaxMessageBytes))
}

// fetchMaxBytes is how much one fetch may return: franz-go's default, or
// more if a single record may be larger.
func (o *options) fetchMaxBytes() int32 {
	return int32(max(50<<20, o.MaxMessageBytes))
}

// clientOpts are the options every client of the bus shares.
func (o *options) clientOpts(brokers []string, hooks ...kgo.Hook) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.DialTimeout(time.Duration(o.DialTimeout)),
	}
	if len(hooks) > 0 {
		opts = append(opts, kgo.WithHooks(hooks...))
	}
	if o.tlsConfig != nil {
		opts = append(opts, kgo.DialTLSConfig(o.tlsConfig.Clone()))
	}
	if o.sasl != nil {
		opts = append(opts, kgo.SASL(o.sasl))
	}
	return opts
}

// producerOpts configures the bus's one producer.
func (o *options) producerOpts() []kgo.Opt {
	opts := []kgo.Opt{
		// franz-go lingers 10ms by default: every request and every reply
		// would wait for it.
		kgo.ProducerLinger(time.Duration(o.Linger)),
		kgo.RecordDeliveryTimeout(time.Duration(o.DeliveryTimeout)),
		kgo.ProducerBatchMaxBytes(o.batchMaxBytes()),
		kgo.ProducerBatchCompression(codec(o.Compression)),
		// franz-go's default keeps unkeyed records on one partition for
		// 64 KiB: hundreds of small requests, all to the one group member
		// that owns it. Changing partition with every new batch spreads
		// requests over the members; keyed records still hash as in Kafka.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}
	switch o.Acks {
	case "all":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "leader":
		// Idempotent writes need acks from all in-sync replicas.
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "none":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	}
	return opts
}

// consumerOpts configures the fetching of subscriptions and inboxes.
func (o *options) consumerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.FetchMaxBytes(o.fetchMaxBytes()),
		kgo.FetchMaxPartitionBytes(int32(o.MaxMessageBytes)),
		kgo.FetchMaxWait(time.Duration(o.FetchMaxWait)),
	}
}

func codec(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}
