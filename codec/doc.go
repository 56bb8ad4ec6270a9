// Package codec encodes what travels over the bus and over gRPC.
//
// Envelope encoding (EncodeRequest, DecodeRequest, EncodeResponse,
// DecodeResponse) turns the wire types of package vrpcpb into bus message
// bodies and back, checking the envelope version and size. Raw is a gRPC
// codec that passes message bytes through untouched, so that a vRPC server
// forwards a request to its target without knowing the target's protos.
package codec
