package mqtt

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// minBackoff is the first pause between reconnection attempts; it
	// doubles up to reconnect_backoff_max.
	minBackoff = 50 * time.Millisecond
	// packetTimeout is paho's own bound on waiting for an acknowledgement.
	// Every wait here has a context of its own, which must decide, not paho.
	packetTimeout = 24 * time.Hour
	// ioBufferSize is the read and write buffer of a connection.
	ioBufferSize = 64 << 10
)

// linkConfig is what a link says in its CONNECT packets.
type linkConfig struct {
	clientID string
	// cleanStart is for the first connection only: later ones resume the
	// session the first one made.
	cleanStart bool
	expiry     uint32 // session expiry, seconds
	recvMax    uint16 // Receive Maximum: QoS 1 messages in flight to us
	will       *paho.WillMessage
	willProps  *paho.WillProperties
	// onUp runs after each CONNACK, before the link counts as up: it
	// (re)subscribes. first is true on the link's first connection only.
	// An error drops the connection and retries.
	onUp func(ctx context.Context, c *conn, first bool) error
	// onPublish is called for every PUBLISH, from the connection's one
	// reading goroutine, in order. It must not block.
	onPublish func(c *conn, p *paho.Publish)
}

// link is an MQTT connection with a fixed client id, which a goroutine of
// its own keeps up: it reconnects with backoff and resumes the session.
type link struct {
	bus *Bus
	cfg linkConfig

	ctx  context.Context // ends with leave: stops reconnecting
	stop context.CancelFunc
	done chan struct{} // closed when run returns

	mu       sync.Mutex
	cur      *conn         // the live connection, ready or not; nil while down
	ready    bool          // cur has passed onUp
	upCh     chan struct{} // closed when the link becomes ready
	refused  chan struct{} // closed while the broker refuses the client (rpcbus.ErrRefused); replaced once ready
	lastErr  error         // why the link is down, for error messages
	stopping bool
}

func newLink(b *Bus, cfg linkConfig) *link {
	l := &link{bus: b, cfg: cfg, done: make(chan struct{}), upCh: make(chan struct{}), refused: make(chan struct{})}
	l.ctx, l.stop = context.WithCancel(context.Background())
	go l.run()
	return l
}

// run connects, and reconnects whenever the connection drops, until leave.
func (l *link) run() {
	defer close(l.done)
	// Jitter, so that the clients of a broker that restarts do not all
	// come back at once.
	maxPause := time.Duration(l.bus.o.ReconnectBackoffMax)
	bo := backoff.New(backoff.Policy{Initial: min(minBackoff, maxPause), Max: maxPause, Jitter: true})
	connected := false // once, the session exists: resume it from then on
	for {
		c, err := l.bus.dial(l.ctx, l.cfg, l.cfg.cleanStart && !connected)
		if err == nil {
			first := !connected
			connected = true
			l.mu.Lock()
			l.cur = c
			l.mu.Unlock()
			err = l.cfg.onUp(l.ctx, c, first)
			if err == nil {
				bo.Reset()
				l.setReady(c)
				select {
				case <-c.dead:
					err = c.err()
				case <-l.ctx.Done():
					return // leave ends the connection
				}
			} else if l.ctx.Err() != nil {
				return // leave ends the connection
			} else {
				c.drop()
				<-c.dead
			}
		}
		l.setDown(err)
		if !bo.Wait(l.ctx) {
			return
		}
	}
}

func (l *link) setReady(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur, l.ready, l.lastErr = c, true, nil
	close(l.upCh)
	select {
	case <-l.refused:
		l.refused = make(chan struct{})
	default:
	}
}

func (l *link) setDown(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready {
		l.upCh = make(chan struct{})
	}
	l.cur, l.ready = nil, false
	if err != nil {
		l.lastErr = err
	}
	if errors.Is(err, rpcbus.ErrRefused) {
		select {
		case <-l.refused:
		default:
			close(l.refused)
		}
	}
}

// current returns the ready connection, waiting for one until ctx ends.
func (l *link) current(ctx context.Context) (*conn, error) {
	for {
		l.mu.Lock()
		c, ready, up, stopping, refused := l.cur, l.ready, l.upCh, l.stopping, l.refused
		l.mu.Unlock()
		switch {
		case stopping:
			return nil, rpcbus.ErrClosed
		case ready && c.alive():
			return c, nil
		case ready:
			// Dropped; run has not noticed yet.
			if !backoff.Sleep(ctx, time.Millisecond) {
				return nil, disconnected(ctx, c.err())
			}
			continue
		}
		var lastErr error
		select {
		case <-up:
		case <-l.ctx.Done():
			return nil, rpcbus.ErrClosed
		case <-refused:
			l.mu.Lock()
			lastErr = l.lastErr
			l.mu.Unlock()
			if errors.Is(lastErr, rpcbus.ErrRefused) {
				return nil, lastErr
			}
		case <-ctx.Done():
			l.mu.Lock()
			lastErr = l.lastErr
			l.mu.Unlock()
			return nil, disconnected(ctx, lastErr)
		}
	}
}

func disconnected(ctx context.Context, last error) error {
	if last == nil {
		return fmt.Errorf("not connected to the broker: %w: %w", rpcbus.ErrUnavailable, ctx.Err())
	}
	return fmt.Errorf("not connected to the broker: %w: %w (last error: %v)", rpcbus.ErrUnavailable, ctx.Err(), last)
}

// leave stops reconnecting and ends the connection. If the connection is
// up, final runs on it first (bounded by ctx), and the DISCONNECT carries
// expiry, if not nil, as the session's new expiry.
func (l *link) leave(ctx context.Context, final func(ctx context.Context, c *conn), expiry *uint32) {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		<-l.done
		return
	}
	l.stopping = true
	l.stop()
	l.mu.Unlock()
	<-l.done
	l.mu.Lock()
	c := l.cur
	l.mu.Unlock()
	if c == nil {
		return
	}
	if c.alive() && final != nil {
		final(ctx, c)
	}
	c.disconnect(expiry)
}

// conn is one connection of a link: a paho client and its session state.
type conn struct {
	cl        *paho.Client
	st        *state.State
	bc        *bufConn
	raw       net.Conn
	present   bool   // the broker resumed a session
	maxPacket uint32 // the broker's Maximum Packet Size; 0: none
	user      string // the user name sent in CONNECT, for errors

	// dead is closed once the client has shut down; ctx ends with it, so
	// that waits on a dead connection end.
	dead   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	lastErr error
}

func (c *conn) alive() bool { return c.ctx.Err() == nil }

func (c *conn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr == nil {
		return errors.New("connection closed")
	}
	return c.lastErr
}

func (c *conn) setErr(err error) {
	c.mu.Lock()
	if c.lastErr == nil {
		c.lastErr = err
	}
	c.mu.Unlock()
}

// drop closes the network connection without a DISCONNECT, as a crash or
// a network failure would: the broker keeps the session and, after
// will_delay, publishes the will.
func (c *conn) drop() { _ = c.raw.Close() }

// disconnect ends the connection with a DISCONNECT (normal: no will) and
// waits until the client has shut down.
func (c *conn) disconnect(expiry *uint32) {
	c.bc.disconnecting.Store(true)
	d := &paho.Disconnect{ReasonCode: 0}
	if expiry != nil {
		d.Properties = &paho.DisconnectProperties{SessionExpiryInterval: expiry}
	}
	_ = c.cl.Disconnect(d)
	<-c.dead
}

// ack sends the PUBACK of a received QoS 1 message, if the connection it
// came on is still up (otherwise the broker sends the message again when
// the session resumes). paho's state keeps nothing for a QoS 1 message it
// received, so the PUBACK can bypass it: it goes out with the next packet
// the connection sends, or within ackDelay.
func (c *conn) ack(id uint16) { c.bc.ack(id) }

// publish sends p and waits for its PUBACK, the end of ctx, or the loss of
// the connection.
func (c *conn) publish(ctx context.Context, p *paho.Publish) (*paho.PublishResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	defer func() {
		stop()
		cancel()
	}()
	return c.cl.Publish(ctx, p)
}

// subscribe sends one SUBSCRIBE and waits for its SUBACK, like publish.
func (c *conn) subscribe(ctx context.Context, subs []paho.SubscribeOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	defer func() {
		stop()
		cancel()
	}()
	sa, err := c.cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	if err != nil {
		if sa != nil {
			err = fmt.Errorf("subscribe: %w (reason codes %v)", err, sa.Reasons)
			for i, r := range sa.Reasons {
				if r == reasonNotAuthorized && i < len(subs) {
					return aclRefusal("subscribe to", subs[i].Topic, c.user, err)
				}
			}
			return err
		}
		return fmt.Errorf("subscribe: %w", err)
	}
	return nil
}

// unsubscribe sends one UNSUBSCRIBE and waits for its UNSUBACK.
func (c *conn) unsubscribe(ctx context.Context, filters []string) error {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	defer func() {
		stop()
		cancel()
	}()
	if _, err := c.cl.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters}); err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	return nil
}

// dial connects to the first broker that answers and sends CONNECT.
func (b *Bus) dial(ctx context.Context, cfg linkConfig, cleanStart bool) (*conn, error) {
	var errs []error
	n := len(b.brokers)
	start := int(b.nextBroker.Load())
	for i := range n {
		br := b.brokers[(start+i)%n]
		c, err := b.connect(ctx, br, cfg, cleanStart)
		if err == nil {
			b.nextBroker.Store(int32((start + i) % n))
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", br.addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (b *Bus) connect(ctx context.Context, br broker, cfg linkConfig, cleanStart bool) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(b.o.ConnectTimeout))
	defer cancel()
	raw, tcp, err := b.dialNet(ctx, br)
	if err != nil {
		return nil, err
	}
	c := &conn{raw: raw, bc: newBufConn(raw, tcp), st: state.New(noStore{}, noStore{}), dead: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.cl = paho.NewClient(paho.ClientConfig{
		ClientID: cfg.clientID,
		Conn:     c.bc,
		// paho acknowledges a message when its handlers return; vRPC
		// acknowledges it when Delivery.Ack is called, so paho's own
		// acknowledgement is switched off (see manualAcks).
		Session: manualAcks{c.st},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			cfg.onPublish(c, pr.Packet)
			return true, nil
		}},
		OnClientError: c.setErr,
		OnServerDisconnect: func(d *paho.Disconnect) {
			reason := ""
			if d.Properties != nil {
				reason = d.Properties.ReasonString
			}
			c.setErr(fmt.Errorf("the broker disconnected: reason code %#02x %s", d.ReasonCode, reason))
		},
		PacketTimeout: packetTimeout,
	})
	expiry, recvMax := cfg.expiry, cfg.recvMax
	maxPacket := uint32(b.o.MaxMessageBytes + packetOverhead)
	cp := &paho.Connect{
		ClientID:   cfg.clientID,
		CleanStart: cleanStart,
		KeepAlive:  uint16(seconds(b.o.Keepalive)),
		Properties: &paho.ConnectProperties{
			SessionExpiryInterval: &expiry,
			ReceiveMaximum:        &recvMax,
			MaximumPacketSize:     &maxPacket,
			RequestProblemInfo:    true,
		},
		WillMessage:    cfg.will,
		WillProperties: cfg.willProps,
	}
	user, password := b.o.Username, b.o.Password
	if br.hasUser {
		user, password = br.user, br.password
	}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
		if password != "" {
			cp.Password, cp.PasswordFlag = []byte(password), true
		}
	}
	ca, err := c.cl.Connect(ctx, cp)
	if err != nil {
		c.cancel()
		_ = raw.Close()
		if ca != nil {
			if r := connRefusal(ca.ReasonCode, user, fmt.Errorf("%s: %w", br.addr, err)); r != nil {
				return nil, r
			}
			return nil, fmt.Errorf("CONNACK reason code %#02x: %w", ca.ReasonCode, err)
		}
		return nil, fmt.Errorf("MQTT 5 handshake: %w", err)
	}
	c.present, c.user = ca.SessionPresent, user
	if ca.Properties != nil && ca.Properties.MaximumPacketSize != nil {
		c.maxPacket = *ca.Properties.MaximumPacketSize
	}
	if ca.Properties != nil && !ca.Properties.SharedSubAvailable {
		c.cl.Disconnect(&paho.Disconnect{})
		c.cancel()
		return nil, errors.New("the broker does not offer shared subscriptions, which groups need")
	}
	go func() {
		<-c.cl.Done()
		c.cancel()
		close(c.dead)
	}()
	return c, nil
}

// dialNet opens the network connection to br, and returns it with the TCP
// connection under it.
func (b *Bus) dialNet(ctx context.Context, br broker) (net.Conn, net.Conn, error) {
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	tcp, err := d.DialContext(ctx, "tcp", br.addr)
	if err != nil || !br.tls {
		return tcp, tcp, err
	}
	cfg := b.o.tlsConfig.Clone()
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(br.addr)
		cfg.ServerName = host
	}
	tc := tls.Client(tcp, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = tcp.Close()
		return nil, nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, tcp, nil
}

// noStore is a session store that keeps nothing. paho's state keeps each
// QoS 1 PUBLISH in flight, serialized, to send it again when the session
// resumes on a new connection; here each connection has a new state, and a
// publish whose connection drops is sent again by link.publish, so the copy
// of every payload would be wasted.
type noStore struct{}

func (noStore) Put(uint16, byte, io.WriterTo) error { return nil }
func (noStore) Get(uint16) (io.ReadCloser, error)   { return nil, errors.New("mqtt: nothing stored") }
func (noStore) Delete(uint16) error                 { return nil }
func (noStore) Quarantine(uint16) error             { return nil }
func (noStore) List() ([]uint16, error)             { return nil, nil }
func (noStore) Reset() error                        { return nil }

// manualAcks is paho's in-memory session state with the acknowledgement
// paho sends when a message's handlers return switched off: conn.ack sends
// it when vRPC acknowledges the delivery. Acknowledgements may so leave in
// another order than their messages came, which MQTT asks clients not to
// do; brokers match a PUBACK to its message by packet id (Mosquitto does),
// and in-order acknowledgement would let one slow request hold up every
// later one.
type manualAcks struct{ *state.State }

// Ack implements session.SessionManager: paho calls it when the handlers of
// a message return, which is not when vRPC has handled it.
func (manualAcks) Ack(*packets.Publish) error { return nil }

// bufConn buffers a connection's reads, and its writes for the length of
// one packet: paho writes a packet in several pieces while holding the
// connection's lock (sync.Locker), and Unlock sends them in one write. When
// other packets wait for the lock, Unlock leaves its packet to the last of
// them, so that a burst of packets goes out in one write. PUBACKs wait
// for the next write, or ackDelay.
type bufConn struct {
	net.Conn
	r       *bufio.Reader
	mu      sync.Mutex
	waiting atomic.Int32 // writers in Lock
	w       *bufio.Writer
	timed   bool // a flush of PUBACKs is scheduled

	disconnecting atomic.Bool   // a DISCONNECT is being sent: close gently
	readDone      chan struct{} // closed when a read fails (the broker closed)
	readOnce      sync.Once
}

// closeWait bounds how long closing after a DISCONNECT waits for the
// broker to close its side.
const closeWait = time.Second

// ackDelay bounds how long a PUBACK waits for company. The broker only
// needs it to free a slot of the Receive Maximum, which is large, so a
// short delay costs nothing and saves a write per message under load.
const ackDelay = time.Millisecond

// newBufConn wraps c; tcp is the TCP connection under it (c itself, or
// the one under TLS).
func newBufConn(c, tcp net.Conn) *bufConn {
	bc := &bufConn{Conn: c, w: bufio.NewWriterSize(c, ioBufferSize), readDone: make(chan struct{})}
	var r io.Reader = c
	if qa := quickAck(tcp); qa != nil {
		r = ackingReader{c, qa}
	}
	bc.r = bufio.NewReaderSize(r, ioBufferSize)
	return bc
}

func (c *bufConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil {
		c.readOnce.Do(func() { close(c.readDone) })
	}
	return n, err
}

// Write is only called by paho between Lock and Unlock.
func (c *bufConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// Lock implements sync.Locker, which paho's packet writer takes for the
// length of each packet.
func (c *bufConn) Lock() {
	c.waiting.Add(1)
	c.mu.Lock()
	c.waiting.Add(-1)
}

// Unlock sends what was written since the last write, unless another
// packet waits for the lock: the last writer of a burst sends it all. A
// failed write closes the connection, which paho then notices on its
// reading side.
func (c *bufConn) Unlock() {
	if c.waiting.Load() == 0 {
		c.flush()
	}
	c.mu.Unlock()
}

// Close closes the connection. After a DISCONNECT it first sends what is
// buffered, half-closes, and waits (up to closeWait) for the broker to close
// its side: closing a socket with unread data in it sends a reset, which
// may overtake the DISCONNECT (on its way through a proxy, say) so that the
// broker never reads it and publishes the will.
func (c *bufConn) Close() error {
	if c.disconnecting.Load() {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeWait))
		c.mu.Lock()
		c.flush()
		c.mu.Unlock()
		if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		t := time.NewTimer(closeWait)
		select {
		case <-c.readDone:
		case <-t.C:
		}
		t.Stop()
	}
	return c.Conn.Close()
}

func (c *bufConn) flush() {
	if c.w.Buffered() > 0 {
		if err := c.w.Flush(); err != nil {
			_ = c.Conn.Close()
		}
	}
}

// ack queues the PUBACK of packet id: MQTT 5's short form, reason code
// 0x00 (Success) and no properties, in four bytes.
func (c *bufConn) ack(id uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.w.Write([]byte{0x40, 2, byte(id >> 8), byte(id)})
	if !c.timed {
		c.timed = true
		time.AfterFunc(ackDelay, c.flushAcks)
	}
}

func (c *bufConn) flushAcks() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timed = false
	c.flush()
}

// ackingReader acknowledges what it reads at once (TCP_QUICKACK after every
// read). Mosquitto leaves Nagle's algorithm on by default (set_tcp_nodelay
// false): it holds a small packet back while an earlier one is
// unacknowledged, and a client delaying its acknowledgements (40ms on
// Linux) would wait that long for a reply that follows a PUBACK.
type ackingReader struct {
	r      io.Reader
	ackNow func()
}

func (a ackingReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.ackNow()
	return n, err
}
