package seal

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// The envelope fields that hold signatures.
const (
	RequestSignatureField  protowire.Number = 16
	ResponseSignatureField protowire.Number = 12
)

// SignRequest encodes req (as codec.EncodeRequest does) signed with k: it sets
// req.KeyId to k's id, and the signature is the encoding's last field.
func SignRequest(req *vrpcpb.Request, k *Key) ([]byte, error) {
	req.KeyId, req.Signature, req.Version = k.id, nil, codec.Version
	b, err := encode(req)
	if err != nil {
		return nil, err
	}
	return k.appendSigned(b, RequestSignatureField, requestDomain, "")
}

// VerifyRequest checks that b, an encoded request, is signed with k. b is
// the message as it came off the bus: what a decoder reads from it is what
// the signature covers.
func VerifyRequest(b []byte, k *Key) error {
	signed, sig, err := Split(b, RequestSignatureField)
	if err != nil {
		return err
	}
	if !k.verify(requestDomain, "", signed, sig) {
		return ErrBadSignature
	}
	return nil
}

// SignResponse encodes resp (as codec.EncodeResponse does) signed with k for the
// client clientID: a client other than clientID does not take it.
func SignResponse(resp *vrpcpb.Response, clientID string, k *Key) ([]byte, error) {
	resp.KeyId, resp.Signature, resp.Version = k.id, nil, codec.Version
	b, err := encode(resp)
	if err != nil {
		return nil, err
	}
	return k.appendSigned(b, ResponseSignatureField, replyDomain, clientID)
}

// VerifyResponse checks that b, an encoded reply, is signed with k for the
// client clientID.
func VerifyResponse(b []byte, clientID string, k *Key) error {
	signed, sig, err := Split(b, ResponseSignatureField)
	if err != nil {
		return err
	}
	if !k.verify(replyDomain, clientID, signed, sig) {
		return ErrBadSignature
	}
	return nil
}

// SealRequest moves req's payload, metadata and trace context into
// req.Sealed, encrypted with k and bound to req's id and client id. Call
// it before SignRequest.
func SealRequest(req *vrpcpb.Request, k *Key) error {
	inner, err := proto.Marshal(&vrpcpb.Request{Payload: req.Payload, Metadata: req.Metadata, TraceContext: req.TraceContext})
	if err != nil {
		return err
	}
	sealed, err := k.seal(inner, aad("request", req.Id, req.ClientId))
	if err != nil {
		return err
	}
	req.Sealed, req.Payload, req.Metadata, req.TraceContext = sealed, nil, nil, nil
	return nil
}

// OpenRequest puts back what SealRequest moved into req.Sealed. A request
// without a sealed body is left as it is.
func OpenRequest(req *vrpcpb.Request, k *Key) error {
	if len(req.Sealed) == 0 {
		return nil
	}
	plain, err := k.open(req.Sealed, aad("request", req.Id, req.ClientId))
	if err != nil {
		return err
	}
	var inner vrpcpb.Request
	if err := proto.Unmarshal(plain, &inner); err != nil {
		return ErrOpen
	}
	req.Payload, req.Metadata, req.TraceContext, req.Sealed = inner.Payload, inner.Metadata, inner.TraceContext, nil
	return nil
}

// SealResponse moves resp's payload, status, header and trailer into
// resp.Sealed, encrypted with k and bound to resp's id and clientID. Call
// it before SignResponse.
func SealResponse(resp *vrpcpb.Response, clientID string, k *Key) error {
	inner, err := proto.Marshal(&vrpcpb.Response{Payload: resp.Payload, Status: resp.Status, Header: resp.Header, Trailer: resp.Trailer})
	if err != nil {
		return err
	}
	sealed, err := k.seal(inner, aad("reply", resp.Id, clientID))
	if err != nil {
		return err
	}
	resp.Sealed, resp.Payload, resp.Status, resp.Header, resp.Trailer = sealed, nil, nil, nil, nil
	return nil
}

// OpenResponse puts back what SealResponse moved into resp.Sealed. A reply
// without a sealed body is left as it is.
func OpenResponse(resp *vrpcpb.Response, clientID string, k *Key) error {
	if len(resp.Sealed) == 0 {
		return nil
	}
	plain, err := k.open(resp.Sealed, aad("reply", resp.Id, clientID))
	if err != nil {
		return err
	}
	var inner vrpcpb.Response
	if err := proto.Unmarshal(plain, &inner); err != nil {
		return ErrOpen
	}
	resp.Payload, resp.Status, resp.Header, resp.Trailer, resp.Sealed = inner.Payload, inner.Status, inner.Header, inner.Trailer, nil
	return nil
}
