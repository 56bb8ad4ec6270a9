package embedded

import (
	"strconv"
	"time"
)

// Defaults of the retention settings. A request older than the servers'
// max_request_age (default 10m) is refused as expired whoever reads it, and
// a reply is read within its call's deadline, so records older than that
// serve no one: the broker keeps them 10m. 8 MiB a partition (32 MiB a
// topic of the default 4 partitions: some 16,000 requests of 2 KiB, more
// than a minute of the calls a small box serves) bounds a burst to tens of
// MiB a topic without cutting a backlog a server can still work through
// before its deadlines.
const (
	// DefaultRetention is the age past which the broker deletes records
	// (setting retention).
	DefaultRetention = 10 * time.Minute
	// DefaultRetentionBytes is the size of a partition past which the
	// broker deletes its oldest records (setting retention_bytes).
	DefaultRetentionBytes = 8 << 20
)

// Bounds of the retention settings.
const (
	minRetention      = time.Second
	maxRetention      = 30 * 24 * time.Hour
	minRetentionBytes = 64 << 10
	maxSegmentBytes   = 1 << 20
	minSegmentBytes   = 16 << 10
)

// retention is how long and how much of each partition the broker keeps.
type retention struct {
	age   time.Duration
	bytes int64
}

func defaultRetention() retention {
	return retention{age: DefaultRetention, bytes: DefaultRetentionBytes}
}

// brokerConfigs are the broker-wide defaults that make kfake keep no more
// than r: retention by age and size for every topic without its own
// (the reply topics set retention.ms, and keep the size bound), and
// segments small enough that trimming frees memory: kfake drops a
// segment only once all of it is past retention, and rolls one only by
// size (default 100 MiB).
func (r retention) brokerConfigs() map[string]string {
	return map[string]string{
		"log.retention.ms":    strconv.FormatInt(r.age.Milliseconds(), 10),
		"log.retention.bytes": strconv.FormatInt(r.bytes, 10),
		"log.segment.bytes":   strconv.FormatInt(r.segmentBytes(), 10),
	}
}

func (r retention) segmentBytes() int64 {
	if r.bytes < 0 {
		return maxSegmentBytes
	}
	return min(max(r.bytes/16, minSegmentBytes), maxSegmentBytes)
}

// interval is how often the broker applies retention: often enough that a
// burst does not outgrow retention_bytes by much (at 10,000 calls a second
// of 2 KiB, a second is 20 MiB), seldom enough to cost little (a pass
// walks the batch index of every partition, which retention bounds).
func (r retention) interval() time.Duration {
	return min(max(r.age/20, 100*time.Millisecond), time.Second)
}

// enforceRetention applies retention to every partition until c.stop is
// closed. kfake honours retention.ms and retention.bytes when asked
// (Cluster.ApplyRetention) but on its own runs it only for topics with
// those keys set, and hourly (log.cleaner.backoff.ms).
func (c *cluster) enforceRetention() {
	defer close(c.stopped)
	t := time.NewTicker(c.ret.interval())
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.kc.ApplyRetention()
		}
	}
}
