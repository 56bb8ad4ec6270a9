package vrpc_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/internal/vtest"
)

// docFiles are the documents whose shell blocks TestDocCommands runs.
var docFiles = []string{"README.md", "deploy/README.md", "doc/architecture.md"}

// notRun are the documented commands this test does not run, each with the
// reason and what checks it instead. Every other command in a shell block
// of docFiles runs, as written, from the repository root.
var notRun = map[string]string{
	"go test -race ./...":            "the test command itself (.ci/run runs it)",
	"deploy/build.sh":                ".ci/run runs deploy/build.sh \"$(mktemp -d)\", the same builds",
	"deploy/build.sh /tmp/out":       ".ci/run runs deploy/build.sh \"$(mktemp -d)\", the same builds",
	`deploy/build.sh "$(mktemp -d)"`: ".ci/run runs it",
	"install -m 0755 dist/vrpc-linux-amd64 /usr/local/bin/vrpc":                     "installs on the host: needs root",
	"useradd --system --no-create-home --shell /usr/sbin/nologin vrpc":              "changes the host's users: needs root",
	"install -d -m 0750 -o root -g vrpc /etc/vrpc":                                  "installs on the host: needs root",
	"install -m 0644 deploy/vrpc-serve.service /etc/systemd/system/":                "installs on the host: needs root and systemd (TestSystemdUnit checks the unit)",
	"systemctl daemon-reload && systemctl enable --now vrpc-serve":                  "needs systemd (TestSystemdUnit checks the unit)",
	"systemctl reload vrpc-serve":                                                   "needs systemd; TestServeReloadsKeys sends the SIGHUP it sends",
	"docker build -f deploy/Dockerfile -t vrpc .":                                   "needs a container engine, which the development machine lacks (deploy/README: untested)",
	"docker run --rm -v /etc/vrpc:/etc/vrpc:ro vrpc serve -f /etc/vrpc/server.yaml": "needs a container engine",
	"docker kill --signal=HUP <container>":                                          "needs a container engine",
}

// TestDocCommands runs the commands of the documents' shell blocks in a
// fresh clone's working tree, as a reader would paste them: the
// README's quick start, the examples as separate processes on their
// documented ports (the target, `vrpc serve` with the embedded broker, the
// example clients, a second server, the gateway), the grpcurl calls when
// grpcurl is installed, the Node client when its packages are, and the
// key generator. A command added to a document must be run here or listed
// in notRun with the reason.
func TestDocCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the documented commands: several processes and builds")
	}
	cmds := docCommands(t)
	for _, c := range cmds {
		if _, ok := notRun[withoutComment(c)]; !ok && !slices.Contains(runCommands, c) {
			t.Errorf("%q is documented but neither run by TestDocCommands nor listed in notRun", c)
		}
	}
	for _, c := range runCommands {
		if !slices.Contains(cmds, c) {
			t.Errorf("TestDocCommands runs %q, which no document shows any more", c)
		}
	}
	if t.Failed() {
		return
	}
	// The documented ports: a developer's own vrpc serve would be in the way.
	for _, addr := range []string{"127.0.0.1:8081", "127.0.0.1:9092", "127.0.0.1:8082", "127.0.0.1:8080", "127.0.0.1:9090", "127.0.0.1:9000"} {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			msg := fmt.Sprintf("%s is taken: the documented examples listen there", addr)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}

	d := &docRunner{t: t, home: t.TempDir()}
	d.run("go run ./cmd/vrpc demo")
	d.run("vrpc keygen > edge-1.secret          # a secret for HMAC-SHA256 (server and client share it)")
	if b, err := os.ReadFile(filepath.Join(d.home, "edge-1.secret")); err != nil || len(bytes.TrimSpace(b)) < 32 {
		t.Errorf("vrpc keygen wrote %q (%v), want a secret", b, err)
	}
	d.run("vrpc keygen --ed25519                # or a key pair: private stays with its owner")

	d.start("go run ./example/target                              # the demo gRPC target on :8081", "127.0.0.1:8081", "")
	d.start("go run ./cmd/vrpc serve -f example/embedded.yaml     # broker + vRPC server", "", "http://127.0.0.1:8082/readyz")
	d.run("go run ./example/direct                              # or ./example/interceptor, ./example/conn")
	d.run("go run ./example/interceptor")
	d.run("go run ./example/conn")
	d.start("go run ./example/server -f example/server.yaml       # a second server in the same group", "", "http://127.0.0.1:8080/readyz")
	stop := d.start("go run ./cmd/vrpc gateway -f example/client.yaml           # listens on 127.0.0.1:9000", "127.0.0.1:9000", "")
	if _, err := exec.LookPath("grpcurl"); err == nil {
		for _, c := range runCommands {
			if strings.HasPrefix(c, "grpcurl ") {
				d.run(c)
			}
		}
	} else {
		t.Log("grpcurl is not installed: its four commands are not run (vgateway's tests make the same calls)")
	}
	if _, err := os.Stat("vgateway/testdata/node/node_modules"); err == nil {
		d.run("cd vgateway/testdata/node && node client.js 127.0.0.1:9000")
	} else {
		t.Log("vgateway/testdata/node has no node_modules (npm ci): the Node client is not run")
	}
	stop()
	d.start("go run ./cmd/vrpc gateway -f example/client.yaml --listen 0.0.0.0:9000", "127.0.0.1:9000", "")
}

// runCommands are the documented commands TestDocCommands runs, exactly as
// the documents show them (comments included).
var runCommands = []string{
	"go run ./cmd/vrpc demo",
	"vrpc keygen > edge-1.secret          # a secret for HMAC-SHA256 (server and client share it)",
	"vrpc keygen --ed25519                # or a key pair: private stays with its owner",
	"go run ./example/target                              # the demo gRPC target on :8081",
	"go run ./cmd/vrpc serve -f example/embedded.yaml     # broker + vRPC server",
	"go run ./example/direct                              # or ./example/interceptor, ./example/conn",
	"go run ./example/server -f example/server.yaml       # a second server in the same group",
	"go run ./cmd/vrpc gateway -f example/client.yaml           # listens on 127.0.0.1:9000",
	"go run ./cmd/vrpc gateway -f example/client.yaml --listen 0.0.0.0:9000",
	"grpcurl -plaintext 127.0.0.1:9000 list",
	"grpcurl -plaintext 127.0.0.1:9000 describe demo.Demo",
	`grpcurl -plaintext -d '{"message":"hi"}' -H 'user-id: 12345' 127.0.0.1:9000 demo.Demo/Ping`,
	`grpcurl -plaintext -H 'vrpc-target: demo' -d '{"message":"hi"}' 127.0.0.1:9000 demo.Demo/Ping`,
}

// docCommands returns the lines of the shell blocks of docFiles.
func docCommands(t *testing.T) []string {
	t.Helper()
	var cmds []string
	for _, f := range docFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		in := false
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			l := sc.Text()
			switch {
			case strings.HasPrefix(l, "```"):
				in = !in && (l == "```sh" || l == "```bash" || l == "```shell")
			case in && strings.TrimSpace(l) != "":
				cmds = append(cmds, strings.TrimSpace(l))
			}
		}
	}
	return cmds
}

// docRunner runs documented commands with sh from the repository root,
// with a vrpc built from this tree first on PATH.
type docRunner struct {
	t    *testing.T
	home string // the working directory of commands that write files
	bin  string
}

func (d *docRunner) command(ctx context.Context, line string) *exec.Cmd {
	d.t.Helper()
	if d.bin == "" {
		d.bin = d.t.TempDir()
		if out, err := exec.Command("go", "build", "-o", d.bin, "./cmd/vrpc").CombinedOutput(); err != nil {
			d.t.Fatalf("go build ./cmd/vrpc: %v\n%s", err, out)
		}
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Env = append(os.Environ(), "PATH="+d.bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if strings.HasPrefix(line, "vrpc keygen") {
		cmd.Dir = d.home
	}
	// Its own process group, so that go run's child goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// run runs line to its end, which must be a success within 3 minutes (a
// cold go run builds first).
func (d *docRunner) run(line string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := d.command(ctx, line).CombinedOutput()
	if err != nil {
		d.t.Fatalf("%s: %v\n%s", line, err, out)
	}
	d.t.Logf("%s:\n%s", line, bytes.TrimSpace(out))
}

// start starts line, which serves until stopped, and waits until addr
// accepts connections or url answers 200. The returned function (also a
// cleanup) stops it with SIGTERM, as a reader's Ctrl-C would, and fails the
// test if it does not end within 30 seconds.
func (d *docRunner) start(line, addr, url string) (stop func()) {
	d.t.Helper()
	var out vtest.Buffer
	cmd := d.command(context.Background(), line)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("%s: %v", line, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			d.t.Errorf("%s: still running 30s after SIGTERM", line)
		}
	}
	d.t.Cleanup(stop)
	for limit := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		select {
		case err := <-exited:
			stopped = true
			d.t.Fatalf("%s: exited (%v) before it was ready:\n%s", line, err, out.String())
		default:
		}
		if ready(addr, url) {
			return stop
		}
		if time.Now().After(limit) {
			d.t.Fatalf("%s: not ready within 3m:\n%s", line, out.String())
		}
	}
}

func ready(addr, url string) bool {
	if addr != "" {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// withoutComment is line without a trailing "  # ..." comment.
func withoutComment(line string) string {
	if i := strings.Index(line, "  #"); i >= 0 {
		return strings.TrimSpace(line[:i])
	}
	return line
}
