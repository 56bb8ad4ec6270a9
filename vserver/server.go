package vserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vconfig"
)

// Server forwards the requests of its targets from the bus to the targets.
type Server struct {
	cfg     vconfig.Config
	bus     rpcbus.Bus
	ownsBus bool
	targets map[string]*target
	handler Handler

	// inflight counts workers and listener goroutines; calls is the context
	// calls run under, cancelled only when draining runs out of time.
	inflight    sync.WaitGroup
	calls       context.Context
	cancelCalls context.CancelFunc
	expired     atomic.Uint64
	deadLetters atomic.Uint64
	duplicates  atomic.Uint64
	dedup       DedupStore   // nil when dedup.store is none
	ownsDedup   bool         // dedup was opened from the configuration: Stop closes it
	guard       *guard       // nil when security is off
	work        chan task    // to idle workers
	busy        atomic.Int64 // requests being served
	unacked     atomic.Int64 // deliveries left unacknowledged to come again
	pending     atomic.Int64 // deliveries handed to onDelivery and not yet finished

	// Limits (limits.go). replies is the context replies are published
	// under: cancelled a moment after calls, so that calls cut short by
	// Stop are still answered, but a reply the bus does not take cannot
	// hold Stop past drain_timeout.
	gate          *byteGate
	clients       *clientSlots // nil: max_in_flight_per_client is off
	limits        limitMetrics
	progress      progress
	backlog       backlogCache // Backlog (backlog.go)
	replies       context.Context
	cancelReplies context.CancelFunc

	// Observability (admin.go) and plugins (plugin.go).
	log            *slog.Logger // WithLogger; slog.Default() when none given
	registry       *prometheus.Registry
	tracerProvider trace.TracerProvider // WithTracerProvider; nil: none given
	plugins        []builtPlugin        // enabled, in config order
	startedPlugins []builtPlugin        // those with Lifecycle that started

	mu       sync.Mutex
	warnings []string // see Warnings
	started  bool
	stopped  bool
	sub      rpcbus.Subscription
	admin    *http.Server
	adminLn  net.Listener
	rpc      *grpc.Server
	rpcLn    net.Listener
	health   *health.Server
	busWait  busWait // while Start waits for the bus
	ready    chan struct{}
	quit     chan struct{}
	done     chan struct{}
}

// Option configures NewServer.
type Option interface{ apply(*Server) }

type optionFunc func(*Server)

func (f optionFunc) apply(s *Server) { f(s) }

// WithDedupStore makes the server use store instead of the one the dedup
// configuration names.
func WithDedupStore(store DedupStore) Option {
	return optionFunc(func(s *Server) { s.dedup = store })
}

// WithLogger makes the server log through log instead of slog.Default().
// The server logs what it cannot report to a caller: replies it could not
// publish, messages set aside, requests refused by security, its start and
// stop.
func WithLogger(log *slog.Logger) Option {
	return optionFunc(func(s *Server) {
		if log != nil {
			s.log = log
		}
	})
}

// WithBus makes the server use bus instead of building one from
// cfg.RpcBus. The server does not close it.
func WithBus(bus rpcbus.Bus) Option {
	return optionFunc(func(s *Server) { s.bus = bus })
}

// NewServer checks cfg, builds the plugin chain, opens the bus and creates
// (but does not yet dial) a gRPC conn per target.
func NewServer(cfg *vconfig.Config, opts ...Option) (*Server, error) {
	c := *cfg
	c.Targets = make(map[string]vconfig.Target, len(cfg.Targets))
	for k, v := range cfg.Targets {
		c.Targets[k] = v
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     c,
		targets: make(map[string]*target, len(c.Targets)),
		ready:   make(chan struct{}),
		quit:    make(chan struct{}),
		work:    make(chan task),
		done:    make(chan struct{}),
		gate:    newByteGate(c.MaxInFlightBytes),
		limits:  newLimitMetrics(),
		log:     slog.Default(),
	}
	if c.MaxInFlightPerClient > 0 {
		s.clients = &clientSlots{max: c.MaxInFlightPerClient, n: make(map[string]int)}
	}
	s.calls, s.cancelCalls = context.WithCancel(context.Background())
	s.replies, s.cancelReplies = context.WithCancel(context.Background())
	for _, o := range opts {
		o.apply(s)
	}
	s.registry = s.newRegistry()
	h, built, err := chain(s.pluginEnv(), c.Plugins, s.forward)
	if err != nil {
		return nil, err
	}
	s.handler, s.plugins = h, built
	for name, t := range c.Targets {
		tgt, err := newTarget(name, t, c.MaxMessageSize)
		if err != nil {
			s.closeTargets()
			return nil, err
		}
		s.targets[name] = tgt
	}
	if s.bus == nil {
		bus, err := rpcbus.New(c.RpcBus)
		if err != nil {
			s.closeTargets()
			return nil, err
		}
		s.bus, s.ownsBus = bus, true
	}
	if s.guard, err = newGuard(c.Security, c.Topics.Request, c.Topics.Response, s.bus, s.log); err != nil {
		s.closeTargets()
		if s.ownsBus {
			_ = s.bus.Close()
		}
		return nil, err
	}
	if s.dedup == nil {
		s.ownsDedup = true
		if s.dedup, err = newDedupStore(c.Dedup); err != nil {
			s.closeTargets()
			if s.ownsBus {
				_ = s.bus.Close()
			}
			return nil, err
		}
	}
	return s, nil
}

// Topics returns the request topics the server consumes, one per target.
func (s *Server) Topics() []string {
	topics := make([]string, 0, len(s.targets))
	for name := range s.targets {
		topics = append(topics, s.cfg.Topics.Request+"."+name)
	}
	sort.Strings(topics)
	return topics
}

// Ready is closed once the server consumes its request topics.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// AdminAddr is the admin HTTP address once Start has opened it (before
// Ready: the endpoint answers while the server waits for its bus); ""
// before that, or when disabled.
func (s *Server) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// RPCAddr is the gRPC (health) listener's address once Start has opened
// it (before Ready, serving NOT_SERVING until then); "" before that, or
// when rpc_server_conf.listen_on is not set.
func (s *Server) RPCAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rpcLn == nil {
		return ""
	}
	return s.rpcLn.Addr().String()
}

// Start opens the admin and gRPC listeners, creates the request topics,
// joins the consumer group and serves until Stop. It returns nil after a
// Stop, or the error that kept it from starting.
//
// A bus that cannot be reached yet (an error wrapping
// rpcbus.ErrUnavailable: refused, timed out, not resolved, not ready) does
// not keep the server from starting: Start waits for it, trying again
// with backoff for as long as it takes, and logs what it waits for (the
// bus type, its redacted addresses, the last error) at most every
// 30s. Meanwhile /healthz answers, /readyz says "not ready" with
// a bus check naming the wait, and the gRPC health service NOT_SERVING;
// Stop ends the wait at once. Any other error (a refused credential, a
// missing permission, a bad setting) ends Start at once.
//
// When the bus refuses the server (wrong credentials, missing ACLs, a
// replication factor larger than the live brokers) the error wraps
// rpcbus.ErrRefused and names the fix.
func (s *Server) Start() error {
	s.mu.Lock()
	switch {
	case s.stopped:
		s.mu.Unlock()
		return ErrStopped
	case s.started:
		s.mu.Unlock()
		return ErrStarted
	}
	s.started = true
	s.mu.Unlock()

	if err := s.start(); err != nil {
		s.shutdown()
		close(s.done)
		if errors.Is(err, errStopping) {
			return nil
		}
		return err
	}
	s.progress.done(time.Now())
	close(s.ready)
	s.infof("vrpc server %s serving %v on %s bus %v", s.cfg.Name, s.Topics(), s.cfg.RpcBus.Type, rpcbus.RedactAddresses(s.cfg.RpcBus.Brokers))
	<-s.quit
	s.shutdown()
	close(s.done)
	return nil
}

func (s *Server) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), pluginStartTimeout)
	defer cancel()
	topics := s.Topics()
	s.warn(s.configWarnings())
	started, err := startPlugins(ctx, s.plugins)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.startedPlugins = started
	s.mu.Unlock()
	for _, t := range s.targets {
		t.conn.Connect() // dial now: the first call and /readyz need not wait
	}
	// The listeners first: while the server waits for the bus, /healthz
	// answers and /readyz and the gRPC health service say why it is not
	// ready.
	if err := s.listen(); err != nil {
		return err
	}
	sub, err := s.joinBus(topics)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.sub = sub
	s.mu.Unlock()
	if s.guard != nil && s.cfg.Security.KeysFile != "" {
		s.inflight.Add(1)
		go func() {
			defer s.inflight.Done()
			s.guard.watch(s.quit, s.cfg.Name)
		}()
	}
	// The bus may take a while to tell (a group in a rebalance does not
	// say what it consumes): ask in the background, and stop asking at Stop.
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		s.warn(s.groupWarnings())
	}()
	if s.health != nil {
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	}
	return nil
}

// listen opens the admin HTTP endpoint and the gRPC health endpoint.
func (s *Server) listen() error {
	if s.cfg.Port >= 0 {
		addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("vserver: admin endpoint host:port %s: %w", addr, err)
		}
		srv := &http.Server{Handler: s.adminMux(), ReadHeaderTimeout: 5 * time.Second}
		s.mu.Lock()
		s.admin, s.adminLn = srv, ln
		s.mu.Unlock()
		s.inflight.Add(1)
		go func() {
			defer s.inflight.Done()
			_ = srv.Serve(ln)
		}()
	}
	if addr := s.cfg.RpcServerConf.ListenOn; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("vserver: rpc_server_conf.listen_on %s: %w", addr, err)
		}
		hs := health.NewServer()
		hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		srv := grpc.NewServer()
		healthpb.RegisterHealthServer(srv, hs)
		s.mu.Lock()
		s.rpc, s.rpcLn, s.health = srv, ln, hs
		s.mu.Unlock()
		s.inflight.Add(1)
		go func() {
			defer s.inflight.Done()
			_ = srv.Serve(ln)
		}()
	}
	return nil
}

// Stop stops consuming, lets the calls in flight finish and publish their
// replies (for up to drain_timeout; calls still running then are cancelled
// and answered with UNAVAILABLE), acknowledges them, leaves the group and
// closes the listeners, the target conns and the bus. It returns once all of
// that is done; Start then returns nil.
func (s *Server) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		<-s.done
		return
	}
	s.stopped = true
	started := s.started
	s.mu.Unlock()
	close(s.quit)
	if !started {
		s.shutdown()
		close(s.done)
		return
	}
	<-s.done
}

func (s *Server) shutdown() {
	if s.health != nil {
		s.health.Shutdown()
	}
	s.mu.Lock()
	sub := s.sub
	s.mu.Unlock()
	// Replies of calls cut short at drain_timeout get a moment more, at
	// most a second: then nothing a worker does outlasts Stop.
	replyGrace := min(s.cfg.ReplyTimeout, time.Second)
	replyTimer := time.AfterFunc(s.cfg.DrainTimeout+replyGrace, s.cancelReplies)
	defer replyTimer.Stop()
	if sub != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
		timer := time.AfterFunc(s.cfg.DrainTimeout, s.cancelCalls)
		watched := make(chan struct{})
		go s.cutDrainShort(ctx, cancel, watched)
		if err := sub.Close(ctx); err != nil {
			s.errorf("vrpc server %s: closing the subscription: %v", s.cfg.Name, err)
		}
		timer.Stop()
		cancel()
		<-watched
	}
	s.cancelCalls()
	if s.admin != nil {
		_ = s.admin.Close()
	}
	if s.rpc != nil {
		s.rpc.Stop()
	}
	s.inflight.Wait()
	s.cancelReplies()
	s.mu.Lock()
	started := s.startedPlugins
	s.startedPlugins = nil
	s.mu.Unlock()
	if len(started) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), pluginStopTimeout)
		stopPlugins(ctx, s.log, started)
		cancel()
	}
	s.closeTargets()
	if c, ok := s.dedup.(io.Closer); ok && s.ownsDedup {
		_ = c.Close()
	}
	if s.ownsBus {
		if err := s.bus.Close(); err != nil {
			s.errorf("vrpc server %s: closing the bus: %v", s.cfg.Name, err)
		}
	}
}

// cutDrainShort ends the drain (cancel) once every delivery the server was
// handed is finished and some were left unacknowledged on purpose (dead
// letters not set aside): no one will acknowledge those, so waiting out
// drain_timeout for them would only delay Stop. Closing the subscription
// then gives them back to the group.
func (s *Server) cutDrainShort(ctx context.Context, cancel context.CancelFunc, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if s.unacked.Load() > 0 && s.pending.Load() == 0 {
				cancel()
				return
			}
		}
	}
}

func (s *Server) closeTargets() {
	var errs []error
	for _, t := range s.targets {
		errs = append(errs, t.conn.Close())
	}
	if err := errors.Join(errs...); err != nil {
		s.errorf("vrpc server %s: closing target conns: %v", s.cfg.Name, err)
	}
}

// Stats are counters of what the server did not forward.
type Stats struct {
	// Expired counts requests dropped because their deadline had passed
	// when the server took them off the bus.
	Expired uint64
	// DeadLetters counts messages set aside because they could not be read.
	DeadLetters uint64
	// Duplicates counts deliveries of requests already served (or being
	// served), answered from the dedup store without calling the target.
	Duplicates uint64
	// Rejected counts requests refused by security: never run, never
	// answered (vrpc_server_rejected_total has them by reason).
	Rejected uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{Expired: s.expired.Load(), DeadLetters: s.deadLetters.Load(), Duplicates: s.duplicates.Load()}
	if g := s.guard; g != nil {
		for r := range numRejectReasons {
			st.Rejected += g.rejected[r].Load()
		}
	}
	return st
}

// errorf logs an error the server cannot hand to a caller.
func (s *Server) errorf(format string, args ...any) { logf(s.log, slog.LevelError, format, args...) }

// infof logs a change of the server's state.
func (s *Server) infof(format string, args ...any) { logf(s.log, slog.LevelInfo, format, args...) }

func logf(log *slog.Logger, level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if log.Enabled(ctx, level) {
		log.Log(ctx, level, fmt.Sprintf(format, args...))
	}
}
