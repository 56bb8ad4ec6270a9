package vgateway_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// nodeResult is what testdata/node/client.js prints.
type nodeResult struct {
	OK       nodeCall `json:"ok"`
	Error    nodeCall `json:"error"`
	Deadline nodeCall `json:"deadline"`
}

type nodeCall struct {
	Reply *struct {
		Message  string `json:"message"`
		ServedBy string `json:"served_by"`
	} `json:"reply"`
	Code    *int              `json:"code"`
	Details string            `json:"details"`
	Header  map[string]string `json:"header"`
}

// TestNodeClient calls through the gateway from a second language: grpc-js
// with the demo .proto loaded at run time. It needs node and the packages
// of testdata/node (npm ci); without them it skips, except under CI=true.
func TestNodeClient(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "node")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "@grpc", "grpc-js", "package.json"))
	}
	if err != nil {
		msg := "the grpc-js client needs node and its packages: cd vgateway/testdata/node && npm ci (" + err.Error() + ")"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true, so not skipping")
		}
		t.Skip(msg)
	}

	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.js", e.addr)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node client.js: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	var got nodeResult
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client.js output is not its JSON result: %v\n%s", err, out)
	}

	if r := got.OK; r.Reply == nil || r.Reply.Message != "hello from node" || r.Reply.ServedBy != "t1" {
		t.Errorf("ok: %+v, want the reply of t1", r)
	}
	if h := got.OK.Header["x-echo"]; h != "from-node" {
		t.Errorf("ok: response header x-echo %q, want the request's from-node", h)
	}
	if r := got.Error; r.Code == nil || codes.Code(*r.Code) != codes.FailedPrecondition || r.Details != statusMessage {
		t.Errorf("error: %+v, want FAILED_PRECONDITION %q", r, statusMessage)
	}
	if r := got.Deadline; r.Code == nil || codes.Code(*r.Code) != codes.DeadlineExceeded {
		t.Errorf("deadline: %+v, want DEADLINE_EXCEEDED", r)
	}
	if t.Failed() {
		t.Logf("client.js printed %s", out)
	}
}
