package vserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zeromicro/go-zero/core/logx"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vrpcpb"
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
		logx.Errorf("vrpc server %s: encode reply to %s: %v", s.cfg.Name, req.Id, err)
		st := &spb.Status{Code: int32(codes.Internal), Message: "vrpc: the reply could not be encoded: " + strings.ToValidUTF8(err.Error(), "?")}
		if resp.Status != nil {
			st.Code, st.Message = resp.Status.Code, strings.ToValidUTF8(resp.Status.Message, "\uFFFD")
		}
		body, err = s.encodeReply(j, &vrpcpb.Response{Id: req.Id, Status: st, ReceivedUnixNano: resp.ReceivedUnixNano, TargetNanos: resp.TargetNanos})
		if err != nil {
			logx.Errorf("vrpc server %s: encode reply to %s: %v", s.cfg.Name, req.Id, err)
			return
		}
	}
	if j.key != "" {
		ttl := s.cfg.Dedup.TTL
		if j.client != nil {
			ttl = max(ttl, s.guard.replayTTL(time.Unix(0, req.SentUnixNano), time.Now()))
		}
		if err := s.dedup.Done(context.Background(), j.key, body, ttl); err != nil {
			logx.Errorf("vrpc server %s: dedup store: keep reply to %s: %v", s.cfg.Name, req.Id, err)
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

// publish sends an encoded reply to the request's reply address. Failures
// of the bus are retried until the caller's deadline; a reply address that
// no longer exists (the client has gone) is given up at once.
func (s *Server) publish(req *vrpcpb.Request, body []byte) {
	deadline := time.Now().Add(5 * time.Second)
	if req.DeadlineUnixNano != 0 {
		if d := time.Unix(0, req.DeadlineUnixNano); d.After(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	msg := &rpcbus.Message{Value: body}
	bo := backoff.New(backoff.Policy{Initial: 10 * time.Millisecond, Max: time.Second})
	for {
		err := s.bus.Publish(ctx, req.ReplyTo, msg)
		if err == nil {
			return
		}
		if errors.Is(err, rpcbus.ErrUnknownTopic) || errors.Is(err, rpcbus.ErrClosed) || errors.Is(err, rpcbus.ErrMessageTooLarge) {
			logx.Errorf("vrpc server %s: reply to %s at %s dropped: %v", s.cfg.Name, req.Id, req.ReplyTo, err)
			return
		}
		if !bo.Wait(ctx) {
			logx.Errorf("vrpc server %s: reply to %s at %s not published before the caller's deadline: %v", s.cfg.Name, req.Id, req.ReplyTo, err)
			return
		}
	}
}

// deadLetter sets aside a message the server cannot read, on the request
// topic's dead-letter topic, with the reason in a header. It tries until
// the message is there or the server's calls are cancelled (Stop ran out of
// drain_timeout), and reports whether it is there: a message not set aside
// is not acknowledged, so that it is not lost.
func (s *Server) deadLetter(d *rpcbus.Delivery, reason error) bool {
	s.deadLetters.Add(1)
	topic := d.Topic + DeadLetterSuffix
	logx.Errorf("vrpc server %s: setting aside a message from %s on %s: %v", s.cfg.Name, d.Topic, topic, reason)
	headers := map[string]string{DeadLetterReasonHeader: reason.Error(), "vrpc-dlq-topic": d.Topic}
	for k, v := range d.Headers {
		if !strings.HasPrefix(k, "vrpc-dlq-") {
			headers[k] = v
		}
	}
	msg := &rpcbus.Message{Key: d.Key, Value: d.Value, Headers: headers}
	bo := backoff.New(backoff.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second})
	for {
		err := s.setAside(topic, msg)
		if err == nil {
			return true
		}
		if errors.Is(err, rpcbus.ErrClosed) {
			return false
		}
		logx.Errorf("vrpc server %s: dead-letter to %s: %v; trying again", s.cfg.Name, topic, err)
		if !bo.Wait(s.calls) {
			logx.Errorf("vrpc server %s: stopping with a message of %s not set aside; it stays unacknowledged", s.cfg.Name, d.Topic)
			return false
		}
	}
}

func (s *Server) setAside(topic string, msg *rpcbus.Message) error {
	ctx, cancel := context.WithTimeout(s.calls, 10*time.Second)
	defer cancel()
	if tc, ok := s.bus.(rpcbus.TopicCreator); ok {
		if err := tc.CreateTopics(ctx, topic); err != nil {
			return fmt.Errorf("create the topic: %w", err)
		}
	}
	return s.bus.Publish(ctx, topic, msg)
}
