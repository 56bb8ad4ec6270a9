package vserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver/plugin"
)

// DeadLetterSuffix is appended to a request topic to name the topic that
// holds the messages the server could not read.
const DeadLetterSuffix = ".dlq"

// DeadLetterReasonHeader is the header of a dead letter that says why it
// was set aside.
const DeadLetterReasonHeader = "vrpc-dlq-reason"

// replyStored publishes the job's result to the request's reply address,
// after keeping the encoded reply in the dedup store under the job's claim
// (when it holds one): a delivery of the same request that comes after
// this point is answered from the store, even if this server dies before
// publishing or acknowledging.
func (s *Server) replyStored(j *job) {
	req, res := j.req, j.res
	resp := &vrpcpb.Response{
		Id:               req.Id,
		Payload:          res.Payload,
		Header:           codec.MetadataToWire(res.Header),
		Trailer:          codec.MetadataToWire(res.Trailer),
		Encoding:         req.Encoding,
		ReceivedUnixNano: j.received.UnixNano(),
		TargetNanos:      int64(res.TargetTime),
	}
	if res.Status != nil && res.Status.Code() != codes.OK {
		resp.Status = res.Status.Proto()
		resp.Payload = nil
	}
	body, err := s.encodeReply(j, resp)
	if err != nil {
		// Such as a status message that is not UTF-8: answer with what can
		// be sent rather than leave the caller waiting for its deadline.
		s.errorf("vrpc server %s: encode reply to %s: %v", s.cfg.Name, plugin.Clip(req.Id), err)
		st := &spb.Status{Code: int32(codes.Internal), Message: "vrpc: the reply could not be encoded: " + strings.ToValidUTF8(err.Error(), "?")}
		if resp.Status != nil {
			st.Code, st.Message = resp.Status.Code, strings.ToValidUTF8(resp.Status.Message, "\uFFFD")
		}
		body, err = s.encodeReply(j, &vrpcpb.Response{Id: req.Id, Status: st, ReceivedUnixNano: resp.ReceivedUnixNano, TargetNanos: resp.TargetNanos})
		if err != nil {
			s.errorf("vrpc server %s: encode reply to %s: %v", s.cfg.Name, req.Id, err)
			return
		}
	}
	if j.key != "" {
		ttl := s.cfg.Dedup.TTL
		if j.client != nil {
			ttl = max(ttl, s.guard.replayTTL(time.Unix(0, req.SentUnixNano), time.Now()))
		}
		if err := s.dedup.Done(context.Background(), j.key, body, ttl); err != nil {
			s.errorf("vrpc server %s: dedup store: keep reply to %s: %v", s.cfg.Name, plugin.Clip(req.Id), err)
		}
	}
	s.publish(req, body)
}

// encodeReply encodes resp, sealed (when the request was) and signed when
// the request was verified.
func (s *Server) encodeReply(j *job, resp *vrpcpb.Response) ([]byte, error) {
	if j.client == nil {
		return codec.EncodeResponse(resp)
	}
	if j.sealed {
		if err := seal.SealResponse(resp, j.req.ClientId, j.sig); err != nil {
			return nil, err
		}
	}
	return seal.SignResponse(resp, j.req.ClientId, s.guard.replyKey(j.sig))
}

// publish sends an encoded reply to the request's reply address, trying
// again on failures of the bus for up to reply_timeout: never the caller's
// deadline, which the caller chose. A reply address that does not exist is
// tried again too, but only while the caller still waits (before the
// request's deadline) and within reply_timeout: after a broker restart a
// client declares its reply address again (a RabbitMQ exclusive queue, a
// Redis stream lost without persistence) a moment after the server is
// back. A reply address still missing then (the client has gone), a reply
// too large for the bus, or the timeout drops the reply: it is logged and
// counted, not set aside (the request was served; its reply is the
// caller's, and the caller has gone or named an address it cannot be
// answered at).
func (s *Server) publish(req *vrpcpb.Request, body []byte) {
	ctx, cancel := context.WithTimeout(s.replies, s.cfg.ReplyTimeout)
	defer cancel()
	msg := &rpcbus.Message{Value: body}
	bo := backoff.New(backoff.Policy{Initial: 10 * time.Millisecond, Max: time.Second})
	for {
		err := s.bus.Publish(ctx, req.ReplyTo, msg)
		if err == nil {
			return
		}
		reason := ""
		switch {
		case errors.Is(err, rpcbus.ErrUnknownTopic):
			if d := req.DeadlineUnixNano; d > 0 && time.Now().UnixNano() < d && bo.Wait(ctx) {
				continue // the client may not have declared it again yet
			}
			reason = "unknown_address"
		case errors.Is(err, rpcbus.ErrMessageTooLarge):
			reason = "too_large"
		case errors.Is(err, rpcbus.ErrClosed):
			reason = "closed"
		case !bo.Wait(ctx):
			reason = "timeout"
		}
		if reason != "" {
			s.limits.repliesDropped.WithLabelValues(reason).Inc()
			s.errorf("vrpc server %s: reply to %s at %s dropped (%s): %v", s.cfg.Name, plugin.Clip(req.Id), plugin.Clip(req.ReplyTo), reason, err)
			return
		}
	}
}

// deadLetter sets aside a message the server cannot take, on the request
// topic's dead-letter topic, with the reason in a header, and reports
// whether the delivery may be acknowledged. It tries for up to
// dead_letter_timeout (less once Stop has run out of drain_timeout): a
// message not set aside by then is not acknowledged, so that it is not
// lost, and frees its worker. A message the bus refuses as too large for
// the dead-letter topic, or that the bus would keep for no one (no queue
// bound to the topic, no subscriber), is skipped: logged, counted and
// acknowledged, as trying again could not succeed.
func (s *Server) deadLetter(d *rpcbus.Delivery, reason error) bool {
	s.deadLetters.Add(1)
	topic := d.Topic + DeadLetterSuffix
	why := plugin.Clip(reason.Error())
	s.errorf("vrpc server %s: setting aside a message of %d bytes from %s on %s: %s", s.cfg.Name, len(d.Value), d.Topic, topic, why)
	headers := map[string]string{DeadLetterReasonHeader: why, "vrpc-dlq-topic": d.Topic}
	for k, v := range d.Headers {
		if !strings.HasPrefix(k, "vrpc-dlq-") {
			headers[k] = v
		}
	}
	msg := &rpcbus.Message{Key: d.Key, Value: d.Value, Headers: headers}
	ctx, cancel := context.WithTimeout(s.calls, s.cfg.DeadLetterTimeout)
	defer cancel()
	bo := backoff.New(backoff.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second})
	for {
		err := s.setAside(ctx, topic, msg)
		switch {
		case err == nil:
			return true
		case errors.Is(err, rpcbus.ErrMessageTooLarge):
			s.limits.dlqFailures.WithLabelValues("too_large").Inc()
			s.errorf("vrpc server %s: a message of %d bytes from %s is too large for %s; skipping it (acknowledged, not set aside): %v",
				s.cfg.Name, len(d.Value), d.Topic, topic, err)
			return true
		case errors.Is(err, rpcbus.ErrUnknownTopic):
			// A bus that keeps messages only for a topic someone consumes
			// (AMQP with no queue bound to it, MQTT with no subscriber):
			// trying again cannot help until an operator does.
			s.limits.dlqFailures.WithLabelValues("no_consumer").Inc()
			s.errorf("vrpc server %s: the bus keeps nothing on %s until a consumer subscribes to it; skipping a message of %d bytes from %s (acknowledged, not set aside): %v",
				s.cfg.Name, topic, len(d.Value), d.Topic, err)
			return true
		case errors.Is(err, rpcbus.ErrClosed):
			s.limits.dlqFailures.WithLabelValues("closed").Inc()
			return false
		}
		s.errorf("vrpc server %s: dead-letter to %s: %v; trying again", s.cfg.Name, topic, err)
		if !bo.Wait(ctx) {
			s.limits.dlqFailures.WithLabelValues("timeout").Inc()
			s.errorf("vrpc server %s: a message of %s not set aside within dead_letter_timeout (%v); it stays unacknowledged", s.cfg.Name, d.Topic, s.cfg.DeadLetterTimeout)
			return false
		}
	}
}

func (s *Server) setAside(ctx context.Context, topic string, msg *rpcbus.Message) error {
	if tc, ok := s.bus.(rpcbus.TopicCreator); ok {
		if err := tc.CreateTopics(ctx, topic); err != nil {
			return fmt.Errorf("create the topic: %w", err)
		}
	}
	return s.bus.Publish(ctx, topic, msg)
}
