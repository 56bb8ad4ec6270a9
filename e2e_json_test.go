package vrpc_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/internal/testpb"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/vclient"
)

type kitchen struct {
	testpb.UnimplementedKitchenServer
}

func (kitchen) Echo(_ context.Context, s *testpb.Sink) (*testpb.Sink, error) { return s, nil }

func (kitchen) Ping(context.Context, *testpb.Sink) (*testpb.Sink, error) {
	return &testpb.Sink{Text: "kitchen"}, nil
}

// startKitchen serves Kitchen and demo.Demo on one loopback target, with
// server reflection unless noReflection.
func startKitchen(t *testing.T, noReflection bool) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterKitchenServer(srv, kitchen{})
	demo.RegisterDemoServer(srv, &demoserver.Server{Name: "kitchen"})
	if !noReflection {
		reflection.Register(srv)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

const kitchenJSON = `{
  "text": "héllo \"json\"",
  "big": "9007199254740993",
  "color": "GREEN",
  "inner": {"name": "n", "values": [1, 2]},
  "inners": [{"name": "a"}, {"name": "b", "values": [3]}],
  "counts": {"x": 1, "y": 2},
  "at": "2026-11-25T10:00:00.500Z",
  "took": "1.500s",
  "extra": {"@type": "type.googleapis.com/demo.Request", "message": "inside any"},
  "blob": "AAEC",
  "user_name": "proto name"
}`

func wantKitchen(t *testing.T) *testpb.Sink {
	t.Helper()
	extra, err := anypb.New(&demo.Request{Message: "inside any"})
	if err != nil {
		t.Fatal(err)
	}
	return &testpb.Sink{
		Text:     `héllo "json"`,
		Big:      9007199254740993,
		Color:    testpb.Color_GREEN,
		Inner:    &testpb.Inner{Name: "n", Values: []int32{1, 2}},
		Inners:   []*testpb.Inner{{Name: "a"}, {Name: "b", Values: []int32{3}}},
		Counts:   map[string]int32{"x": 1, "y": 2},
		At:       timestamppb.New(mustTime(t, "2026-11-25T10:00:00.5Z")),
		Took:     durationpb.New(1500 * 1e6),
		Extra:    extra,
		Blob:     []byte{0, 1, 2},
		UserName: "proto name",
	}
}

// TestJSONTranscoding: a JSON call with every kind of field reaches the
// target as the equivalent protobuf message, and the reply comes back as
// JSON. The Any holds a type (demo.Request) that the method's own files do
// not import: the server learns it from the target's reflection.
func TestJSONTranscoding(t *testing.T) {
	bus := vtest.StartKafka(t)
	vtest.StartServer(t, vtest.ServerConfig(bus, map[string]vrpc.Target{"kitchen": {Endpoint: startKitchen(t, false)}}))
	c := vtest.NewClient(t, bus, "c1")
	ctx := testContext(t)

	for _, method := range []string{"Echo", "vrpc.test.Kitchen/Echo", "/vrpc.test.Kitchen/Echo"} {
		resp, err := c.Call(ctx, "kitchen", method, []byte(kitchenJSON), nil)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		var got testpb.Sink
		if err := protojson.Unmarshal(resp.Payload, &got); err != nil {
			t.Fatalf("%s: reply %s is not a Sink: %v", method, resp.Payload, err)
		}
		if want := wantKitchen(t); !proto.Equal(&got, want) {
			t.Fatalf("%s: got %v\nwant %v", method, &got, want)
		}
		if !strings.Contains(string(resp.Payload), `"userName":"proto name"`) {
			t.Fatalf("reply should use JSON names by default: %s", resp.Payload)
		}
	}

	resp, err := c.Call(ctx, "kitchen", "Echo", []byte(`{"user_name": "x"}`), nil, vclient.WithJSONOptions(true, true))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"user_name":"x"`, `"text":""`, `"color":"COLOR_UNSPECIFIED"`} {
		if !strings.Contains(string(resp.Payload), want) {
			t.Errorf("with proto names and defaults, reply %s lacks %s", resp.Payload, want)
		}
	}
}

func TestJSONErrors(t *testing.T) {
	bus := vtest.StartKafka(t)
	vtest.StartServer(t, vtest.ServerConfig(bus, map[string]vrpc.Target{"kitchen": {Endpoint: startKitchen(t, false)}}))
	c := vtest.NewClient(t, bus, "c1")
	ctx := testContext(t)

	cases := []struct {
		name, method, payload string
		opts                  []vclient.CallOption
		code                  codes.Code
		says                  []string
	}{
		{"unknown method", "Nope", `{}`, nil, codes.Unimplemented, []string{`"Nope"`, "/vrpc.test.Kitchen/Echo", "/demo.Demo/Ping"}},
		{"ambiguous method", "Ping", `{}`, nil, codes.InvalidArgument, []string{"ambiguous", "/vrpc.test.Kitchen/Ping", "/demo.Demo/Ping"}},
		{"unknown service", "nope.Svc/Echo", `{}`, nil, codes.Unimplemented, []string{"nope.Svc"}},
		{"wrong type", "Echo", `{"text": 1}`, nil, codes.InvalidArgument, []string{"text"}},
		{"unknown field", "Echo", `{"txt": "a"}`, nil, codes.InvalidArgument, []string{"txt"}},
		{"bad enum", "Echo", `{"color": "BLUE"}`, nil, codes.InvalidArgument, []string{"BLUE"}},
		{"not JSON", "Echo", `{"text":`, []vclient.CallOption{vclient.WithJSON()}, codes.InvalidArgument, []string{"vrpc.test.Sink"}},
		{"streaming", "Watch", `{}`, nil, codes.Unimplemented, []string{"streaming"}},
	}
	for _, tc := range cases {
		_, err := c.Call(ctx, "kitchen", tc.method, []byte(tc.payload), nil, tc.opts...)
		st := status.Convert(err)
		if st.Code() != tc.code {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.code)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(st.Message(), s) {
				t.Errorf("%s: message %q does not say %q", tc.name, st.Message(), s)
			}
		}
	}
	// A full method name with a protobuf payload passes through.
	resp, err := c.Call(ctx, "kitchen", "/demo.Demo/Ping", mustMarshal(t, &demo.Request{Message: "pb"}), nil)
	if err != nil || !strings.Contains(string(resp.GetPayload()), "pb") {
		t.Fatalf("protobuf call: %v", err)
	}
}

// TestJSONWithDescriptorSet: a target without server reflection is called
// with JSON through a descriptor set named in its settings.
func TestJSONWithDescriptorSet(t *testing.T) {
	bus := vtest.StartKafka(t)
	addr := startKitchen(t, true)
	set := filepath.Join(t.TempDir(), "kitchen.pb")
	writeDescriptorSet(t, set, testpb.File_kitchen_proto, demo.File_demo_proto)
	vtest.StartServer(t, vtest.ServerConfig(bus, map[string]vrpc.Target{
		"with-set": {Endpoint: addr, Settings: map[string]any{"descriptor_set": set}},
		"without":  {Endpoint: addr},
	}))
	c := vtest.NewClient(t, bus, "c1")
	ctx := testContext(t)

	resp, err := c.Call(ctx, "with-set", "Echo", []byte(kitchenJSON), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got testpb.Sink
	if err := protojson.Unmarshal(resp.Payload, &got); err != nil || !proto.Equal(&got, wantKitchen(t)) {
		t.Fatalf("got %s, %v", resp.Payload, err)
	}
	_, err = c.Call(ctx, "without", "Echo", []byte(`{}`), nil)
	if st := status.Convert(err); st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "reflection") {
		t.Fatalf("without reflection or descriptors: got %v", err)
	}
}

// writeDescriptorSet writes files and everything they import, as protoc
// --include_imports would.
func writeDescriptorSet(t *testing.T, path string, files ...protoreflect.FileDescriptor) {
	t.Helper()
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := range fd.Imports().Len() {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range files {
		add(fd)
	}
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
