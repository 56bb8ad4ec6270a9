package vrpc

// Regenerate the checked-in protobuf code (the envelope in vrpcpb and the demo
// service in example/demo). Needs only Go: buf and the protoc plugins run from
// the module cache at the versions go.mod pins.
//go:generate go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate
