package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// minBackoff is the first pause between reconnection attempts; it
	// doubles up to the reconnect_backoff setting.
	minBackoff = 50 * time.Millisecond
	// closeTimeout bounds the connection.close handshake of Bus.Close and
	// the teardown of subscriptions whose Close context has ended.
	closeTimeout = 5 * time.Second
)

// link is one AMQP connection kept open: it dials the brokers in turn,
// with backoff, until it has a connection, and dials again whenever the
// connection is lost. Users take the current connection with get and open
// their own channels on it; when it is lost their channels close, and they
// come back to get for the next one.
type link struct {
	role    string // "publish" or "consume", in logs and the connection name
	brokers []broker
	addrs   []string // the brokers' host:port, for errors
	o       *options
	ctx     context.Context // ends when the link stops
	cancel  context.CancelFunc
	stop    <-chan struct{} // ctx.Done()
	done    chan struct{}

	mu      sync.Mutex
	conn    *amqp.Connection // nil while down
	up      chan struct{}    // closed while conn is usable; replaced when it is lost
	lastErr error            // why the last dial failed or the connection was lost
	refused chan struct{}    // closed while the broker refuses the credentials or vhost; replaced when a dial succeeds
	blocked string           // the broker's reason while it blocks publishing
	dialing net.Conn         // the socket being dialled, closed by shutdown
}

func newLink(role string, brokers []broker, o *options) *link {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make([]string, len(brokers))
	for i, br := range brokers {
		addrs[i] = br.addr
	}
	l := &link{
		role:    role,
		brokers: brokers,
		addrs:   addrs,
		o:       o,
		ctx:     ctx,
		cancel:  cancel,
		stop:    ctx.Done(),
		done:    make(chan struct{}),
		up:      make(chan struct{}),
		refused: make(chan struct{}),
		lastErr: errors.New("no answer yet"),
	}
	go l.run()
	return l
}

func (l *link) run() {
	defer close(l.done)
	bo := l.backoff()
	wasUp := false
	for i := 0; ; i++ {
		br := l.brokers[i%len(l.brokers)]
		addr := br.addr
		conn, err := l.dial(br)
		if err != nil {
			l.mu.Lock()
			l.lastErr = fmt.Errorf("dialling %s: %w", addr, err)
			if refusal(err, l.o) != nil {
				select {
				case <-l.refused:
				default:
					close(l.refused)
				}
			}
			l.mu.Unlock()
			if !bo.Wait(l.ctx) {
				return
			}
			continue
		}
		bo.Reset()
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
		l.mu.Lock()
		l.conn, l.blocked = conn, ""
		close(l.up)
		select {
		case <-l.refused:
			l.refused = make(chan struct{})
		default:
		}
		l.mu.Unlock()
		if wasUp {
			slog.Info(fmt.Sprintf("rpc_bus amqp: %s connection to %s restored", l.role, addr))
		}
		wasUp = true
		if !l.serve(conn, closed, blocks) {
			return
		}
		i-- // try the same broker first
	}
}

// backoff starts a reconnection backoff: from minBackoff, doubling up to
// reconnect_backoff (which also caps the first pause).
func (l *link) backoff() *backoff.Backoff {
	maxPause := time.Duration(l.o.ReconnectBackoff)
	return backoff.New(backoff.Policy{Initial: min(minBackoff, maxPause), Max: maxPause})
}

// pause waits bo's next pause on behalf of a call with ctx. It reports
// false, at once, when ctx ends (the caller's error is ctx's) or the link
// stops (the caller's error is rpcbus.ErrClosed).
func (l *link) pause(ctx context.Context, bo *backoff.Backoff) bool {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.ctx, cancel)()
	return bo.Wait(ctx)
}

// serve watches conn until it is lost (true) or the link stops (false).
func (l *link) serve(conn *amqp.Connection, closed chan *amqp.Error, blocks chan amqp.Blocking) bool {
	for {
		select {
		case <-l.stop:
			l.down(rpcbus.ErrClosed)
			_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
			return false
		case b, ok := <-blocks:
			if ok {
				l.mu.Lock()
				l.blocked = ""
				if b.Active {
					l.blocked = b.Reason
				}
				l.mu.Unlock()
				continue
			}
			blocks = nil // closed with the connection: wait for closed
		case e := <-closed:
			var err error = e
			if e == nil {
				err = amqp.ErrClosed
			}
			slog.Error(fmt.Sprintf("rpc_bus amqp: %s connection lost, reconnecting: %v", l.role, err))
			l.down(fmt.Errorf("connection lost: %w", err))
			return true
		}
	}
}

// down marks the connection lost with err.
func (l *link) down(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.markDown(err)
}

// downIf marks the connection lost with err if it is still conn.
func (l *link) downIf(conn *amqp.Connection, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == conn {
		l.markDown(err)
	}
}

func (l *link) markDown(err error) {
	if l.conn != nil {
		l.conn = nil
		l.up = make(chan struct{})
	}
	l.lastErr = err
}

// dial opens a connection to br. The socket is dialled with the link's
// stop in mind, and the TLS and AMQP handshakes are bounded by
// dial_timeout.
func (l *link) dial(br broker) (*amqp.Connection, error) {
	addr := br.addr
	timeout := time.Duration(l.o.DialTimeout)
	cfg := l.o.amqpConfig(l.role, br)
	cfg.Dial = func(network, a string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(l.ctx, timeout)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, network, a)
		if err != nil {
			return nil, err
		}
		// Heartbeats start only after the handshakes: until then the
		// deadline keeps a silent broker from stalling the dial.
		if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
			c.Close()
			return nil, err
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if err := l.ctx.Err(); err != nil { // shutdown has looked already
			c.Close()
			return nil, err
		}
		l.dialing = c
		return c, nil
	}
	scheme := "amqp"
	if cfg.TLSClientConfig != nil {
		scheme = "amqps"
		if cfg.TLSClientConfig.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			cfg.TLSClientConfig.ServerName = host
		}
	}
	conn, err := amqp.DialConfig(scheme+"://"+addr+"/", cfg)
	l.mu.Lock()
	l.dialing = nil
	l.mu.Unlock()
	return conn, err
}

// get returns the current connection, waiting for one while the link is
// down, until ctx ends (an error wrapping rpcbus.ErrUnavailable, ctx's error and
// the last connection failure), the broker refuses the credentials or vhost
// (an error wrapping rpcbus.ErrRefused) or the link stops (rpcbus.ErrClosed).
func (l *link) get(ctx context.Context) (*amqp.Connection, error) {
	for {
		l.mu.Lock()
		conn, up, refused := l.conn, l.up, l.refused
		l.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		if conn != nil {
			// Closed, and run has not seen it yet: wait for the next.
			l.downIf(conn, errors.New("connection lost"))
			continue
		}
		select {
		case <-up:
		case <-l.stop:
			return nil, rpcbus.ErrClosed
		case <-refused:
			l.mu.Lock()
			last := l.lastErr
			l.mu.Unlock()
			if r := refusal(last, l.o); r != nil {
				return nil, fmt.Errorf("amqp: %s, %v: %w", l.role, l.addrs, r)
			}
		case <-ctx.Done():
			return nil, l.notConnected(ctx.Err())
		}
	}
}

// notConnected is the error of a call that gave up waiting for a
// connection with cause.
func (l *link) notConnected(cause error) error {
	l.mu.Lock()
	last, blocked := l.lastErr, l.blocked
	l.mu.Unlock()
	if blocked != "" {
		last = fmt.Errorf("the broker blocks publishing: %s", blocked)
	}
	return fmt.Errorf("amqp: not connected to the broker: %w (%s, %v; last: %v): %w", rpcbus.ErrUnavailable, l.role, l.addrs, last, cause)
}

// blockedReason is the broker's reason for blocking the connection's
// publishers (a memory or disk alarm), or "".
func (l *link) blockedReason() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blocked
}

// isUp reports whether the link has a connection.
func (l *link) isUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil && !l.conn.IsClosed()
}

// shutdown stops the link, closes its connection and waits for run.
func (l *link) shutdown() {
	l.cancel()
	l.mu.Lock()
	if l.dialing != nil {
		l.dialing.Close() // ends a handshake in progress
	}
	l.mu.Unlock()
	<-l.done
}
