package redis

import (
	"context"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
)

const (
	// batchersPerBus is how many pipelines of a bus may be on the wire at
	// once: two, so that one is filled while the other is executed.
	batchersPerBus = 2
	// maxBatch and maxBatchBytes bound one pipeline.
	maxBatch      = 512
	maxBatchBytes = 1 << 20
	// queueLength bounds the commands waiting for a pipeline; callers wait
	// (within their context) for room beyond it.
	queueLength = 4096
)

// batcher sends the commands of concurrent callers (every XADD of Publish
// and XACK of the subscriptions) to Redis in pipelines: each pipeline
// carries what was queued while the previous one was on the wire. Redis
// then reads and answers many commands per system call, which halves the
// server's CPU time per request under load; a lone caller still goes out at
// once. Unlike go-redis's own autopipelining, a caller waits for its
// command only as long as its context allows.
type batcher struct {
	rdb   *goredis.Client
	queue chan *op
	stop  chan struct{}
	wg    sync.WaitGroup
}

// op is one queued command; done receives once it has run.
type op struct {
	cmd   goredis.Cmder
	size  int          // bytes of payload, to bound the pipeline
	state atomic.Int32 // opQueued, opTaken or opAbandoned
	done  chan struct{}
}

// States of an op. Its caller may abandon it (its context ended) only while
// it is queued; a pipeline may take it only then.
const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

var opPool = sync.Pool{New: func() any { return &op{done: make(chan struct{}, 1)} }}

func newBatcher(rdb *goredis.Client) *batcher {
	b := &batcher{rdb: rdb, queue: make(chan *op, queueLength), stop: make(chan struct{})}
	for range batchersPerBus {
		b.wg.Go(b.run)
	}
	return b
}

// do runs cmd in the next pipeline and returns its error, or ctx's if ctx
// ends first. A command abandoned before a pipeline took it is not sent; one
// already taken may still run, and its arguments must not be modified until
// it has. After close do returns goredis.ErrClosed.
func (b *batcher) do(ctx context.Context, cmd goredis.Cmder, size int) error {
	o := opPool.Get().(*op)
	o.cmd, o.size = cmd, size
	o.state.Store(opQueued)
	select {
	case b.queue <- o:
	case <-ctx.Done():
		o.cmd = nil
		opPool.Put(o)
		return ctx.Err()
	case <-b.stop:
		o.cmd = nil
		opPool.Put(o)
		return goredis.ErrClosed
	}
	select {
	case <-o.done:
		o.cmd = nil
		opPool.Put(o)
		return cmd.Err()
	case <-ctx.Done():
		b.abandon(o)
		return ctx.Err()
	case <-b.stop:
		b.abandon(o)
		return goredis.ErrClosed
	}
}

// abandon gives o up. If no pipeline has taken it, none will; either way o
// is left to the garbage collector, not recycled: whoever finds it in the
// queue only reads its state.
func (b *batcher) abandon(o *op) {
	if o.state.CompareAndSwap(opQueued, opAbandoned) {
		o.cmd = nil // its payload need not wait in the queue
	}
}

// take claims o for a pipeline; false if its caller abandoned it.
func (b *batcher) take(o *op) bool {
	return o.state.CompareAndSwap(opQueued, opTaken)
}

// doAll runs cmds as do does, and returns the first error.
func (b *batcher) doAll(ctx context.Context, cmds []goredis.Cmder) error {
	if len(cmds) == 1 {
		return b.do(ctx, cmds[0], 0)
	}
	errs := make(chan error, len(cmds))
	for _, c := range cmds {
		go func() { errs <- b.do(ctx, c, 0) }()
	}
	var first error
	for range cmds {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (b *batcher) run() {
	batch := make([]*op, 0, maxBatch)
	for {
		select {
		case o := <-b.queue:
			if !b.take(o) {
				continue
			}
			batch = append(batch, o)
		case <-b.stop:
			return
		}
		size := batch[0].size
	fill:
		for len(batch) < maxBatch && size < maxBatchBytes {
			select {
			case o := <-b.queue:
				if b.take(o) {
					batch = append(batch, o)
					size += o.size
				}
			default:
				break fill
			}
		}
		b.exec(batch)
		clear(batch)
		batch = batch[:0]
	}
}

// exec runs batch and wakes its callers. The commands' own contexts do not
// bound the pipeline, which serves other callers too: the client's read and
// write timeouts do.
func (b *batcher) exec(batch []*op) {
	ctx := context.Background()
	if len(batch) == 1 {
		_ = b.rdb.Process(ctx, batch[0].cmd)
	} else {
		p := b.rdb.Pipeline()
		for _, o := range batch {
			_ = p.Process(ctx, o.cmd)
		}
		_, _ = p.Exec(ctx) // each command has its own error
	}
	for _, o := range batch {
		o.done <- struct{}{}
	}
}

// close stops the batcher; commands still queued fail with
// goredis.ErrClosed.
func (b *batcher) close() {
	close(b.stop)
	b.wg.Wait()
	for {
		select {
		case o := <-b.queue:
			if b.take(o) {
				o.cmd.SetErr(goredis.ErrClosed)
				o.done <- struct{}{}
			}
		default:
			return
		}
	}
}
