package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vclient"
)

// TestCallRefused: when the bus refuses the client (a reply topic needing
// more replicas than there are brokers, a wrong SASL password), vrpc call
// says so with the fix, not under the label of a bad client
// configuration, and does not wait for a deadline.
func TestCallRefused(t *testing.T) {
	t.Parallel()
	plain, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	sasl, err := embedded.Start("127.0.0.1:0", kfake.EnableSASL(), kfake.Superuser("PLAIN", "vrpc", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sasl.Close)
	for _, tc := range []struct {
		name, bus string
		want      []string
	}{
		{"replication factor", `{type: kafka, brokers: ["` + plain.Addr() + `"], settings: {replication_factor: 3}}`,
			[]string{"the bus refused the client", "replication_factor 3", "INVALID_REPLICATION_FACTOR", "start the missing brokers"}},
		{"wrong password", `{type: kafka, brokers: ["` + sasl.Addr() + `"], settings: {sasl_mechanism: PLAIN, username: vrpc, password: guess}}`,
			[]string{"the bus refused the client", `SASL user "vrpc"`, "rpc_bus.settings.username and password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "client.yaml")
			yaml := "client_id: cli\ntimeout: {connect: 60s}\nrpc_bus: " + tc.bus + "\n"
			if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			code, _, errOut := vrpcRun(t, ctx, "call", "-f", file, "demo", "Ping", `{}`)
			t.Logf("exit %d: %s", code, errOut)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if strings.Contains(errOut, "client config") || strings.Contains(errOut, "deadline") {
				t.Errorf("stderr %q: labelled a bad configuration, or waited for a deadline", errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not say %q", errOut, w)
				}
			}
			// The gateway, too, names the refusal rather than its file.
			code, _, errOut = vrpcRun(t, ctx, "gateway", "-f", file, "--listen", "127.0.0.1:0")
			if code == exitOK || !strings.Contains(errOut, "the bus refused the gateway's client") || strings.Contains(errOut, "client config") {
				t.Errorf("gateway: exit %d, stderr %q: want the bus's refusal, not a bad client config", code, errOut)
			}
		})
	}
}

// needBinary returns the path of a broker binary, or skips t (fails it
// under CI=true) when it is not installed.
func needBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (apt-get install %s)", name, pkg)
		}
		t.Skipf("%s is not installed (apt-get install %s)", name, pkg)
	}
	return p
}

// privateBroker runs a broker process of the test's own on a free port of
// loopback (args get it through port), until the test ends, and returns
// its address once it takes connections.
func privateBroker(t *testing.T, bin string, args func(port int, dir string) []string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, args(port, dir)...)
	cmd.Dir = dir
	log, err := os.Create(filepath.Join(dir, "broker.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(dir, "broker.log"))
			t.Fatalf("%s not listening on %s: %v\n%s", bin, addr, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCallRefusedBuses: on every bus with credentials, a wrong password
// makes vclient.New fail at once with an error that wraps
// rpcbus.ErrUnauthenticated and not rpcbus.ErrUnavailable, and vrpc call
// shows it with the settings to check. RabbitMQ is the machine's (guest
// with a wrong password); Redis, NATS and Mosquitto are private servers
// with a password.
func TestCallRefusedBuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		bus   func(t *testing.T) string // the rpc_bus YAML
		hints []string
	}{
		{"amqp", func(t *testing.T) string {
			c, err := net.DialTimeout("tcp", "127.0.0.1:5672", 2*time.Second)
			if err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("RabbitMQ not reachable at 127.0.0.1:5672: %v", err)
				}
				t.Skipf("RabbitMQ not reachable at 127.0.0.1:5672: %v", err)
			}
			_ = c.Close()
			return `{type: amqp, brokers: ["127.0.0.1:5672"], settings: {username: guest, password: wrong}}`
		}, []string{`user "guest"`, "rpc_bus.settings.username and password", "(403)"}},
		{"redis", func(t *testing.T) string {
			addr := privateBroker(t, needBinary(t, "redis-server", "redis-server"), func(port int, dir string) []string {
				return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--requirepass", "s3cret",
					"--save", "", "--appendonly", "no", "--dir", dir}
			})
			return `{type: redis, brokers: ["` + addr + `"], settings: {password: wrong}}`
		}, []string{"rpc_bus.settings.username and password", "WRONGPASS"}},
		{"nats", func(t *testing.T) string {
			addr := privateBroker(t, needBinary(t, "nats-server", "nats-server"), func(port int, dir string) []string {
				return []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "--user", "vrpc", "--pass", "s3cret", "-js", "-sd", dir}
			})
			return `{type: nats, brokers: ["` + addr + `"], settings: {user: vrpc, password: wrong}}`
		}, []string{`user "vrpc"`, "rpc_bus.settings user and password", "Authorization Violation"}},
		{"mqtt", func(t *testing.T) string {
			bin := needBinary(t, "mosquitto", "mosquitto")
			passwd := needBinary(t, "mosquitto_passwd", "mosquitto-clients")
			return `{type: mqtt, brokers: ["` + privateBroker(t, bin, func(port int, dir string) []string {
				pw := filepath.Join(dir, "passwd")
				if out, err := exec.Command(passwd, "-c", "-b", pw, "vrpc", "s3cret").CombinedOutput(); err != nil {
					t.Fatalf("mosquitto_passwd: %v: %s", err, out)
				}
				conf := filepath.Join(dir, "mosquitto.conf")
				// As root, mosquitto would switch to its own user, who
				// cannot read the test's directory.
				me, err := user.Current()
				if err != nil {
					t.Fatal(err)
				}
				text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\nuser %s\n", port, pw, me.Username)
				if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
				return []string{"-c", conf}
			}) + `"], settings: {username: vrpc, password: wrong}}`
		}, []string{`user "vrpc"`, "rpc_bus.settings.username and password", "mosquitto_passwd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bus := tc.bus(t)
			file := filepath.Join(t.TempDir(), "client.yaml")
			if err := os.WriteFile(file, []byte("client_id: cli\ntimeout: {connect: 60s}\nrpc_bus: "+bus+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var cfg vrpc.ClientConfig
			if err := vrpc.LoadClientConfig(file, &cfg); err != nil {
				t.Fatal(err)
			}
			c, err := vclient.New(cfg)
			if err == nil {
				_ = c.Close()
				t.Fatal("vclient.New with a wrong password succeeded")
			}
			if !errors.Is(err, rpcbus.ErrUnauthenticated) || errors.Is(err, rpcbus.ErrUnavailable) {
				t.Errorf("vclient.New: %v\nwant an error wrapping ErrUnauthenticated, not ErrUnavailable", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			code, _, errOut := vrpcRun(t, ctx, "call", "-f", file, "demo", "Ping", `{}`)
			t.Logf("exit %d: %s", code, errOut)
			if code != exitUsage || !strings.Contains(errOut, "the bus refused the client") || strings.Contains(errOut, "client config") {
				t.Errorf("exit %d, stderr %q: want %d and the bus's refusal, not a bad client config", code, errOut, exitUsage)
			}
			for _, h := range tc.hints {
				if !strings.Contains(errOut, h) {
					t.Errorf("stderr %q does not say %q", errOut, h)
				}
			}
		})
	}
}

// TestCallDeniedNATS: a call whose request the NATS server's permissions do
// not let the client publish ends at once with PERMISSION_DENIED naming
// the subject and the fix, not at its deadline (the server says so
// asynchronously).
func TestCallDeniedNATS(t *testing.T) {
	t.Parallel()
	addr := privateBroker(t, needBinary(t, "nats-server", "nats-server"), func(port int, dir string) []string {
		conf := filepath.Join(dir, "nats.conf")
		text := fmt.Sprintf(`listen: 127.0.0.1:%d
jetstream { store_dir: %q }
authorization {
  users = [
    { user: admin, password: admin }
    { user: app, password: pw, permissions: { publish: { deny: ["vrpc.requests.>"] } } }
  ]
}
`, port, filepath.Join(dir, "js"))
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"-c", conf}
	})
	admin, err := rpcbus.New(rpcbus.Config{Type: "nats", Brokers: []string{addr}, Settings: map[string]any{"user": "admin", "password": "admin"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := admin.(rpcbus.TopicCreator).CreateTopics(ctx, vclient.DefaultRequestTopic+".demo"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "client.yaml")
	yaml := "client_id: cli\ntimeout: {connect: 60s, request: 60s}\nrpc_bus: {type: nats, brokers: [\"" + addr + "\"], settings: {user: app, password: pw}}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := vrpcRun(t, ctx, "call", "-f", file, "demo", "/demo.Demo/Ping", `{}`)
	t.Logf("exit %d: %s%s", code, out, errOut)
	if code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	for _, w := range []string{"Code: PermissionDenied", `publish to "vrpc.requests.demo"`, "permissions.publish.allow"} {
		if !strings.Contains(out+errOut, w) {
			t.Errorf("output %q does not say %q", out+errOut, w)
		}
	}
}

// TestDeniedMQTT: a publish Mosquitto's acl_file forbids fails at once
// with an error wrapping rpcbus.ErrForbidden that names the topic and the
// fix.
func TestDeniedMQTT(t *testing.T) {
	t.Parallel()
	bin := needBinary(t, "mosquitto", "mosquitto")
	passwd := needBinary(t, "mosquitto_passwd", "mosquitto-clients")
	addr := privateBroker(t, bin, func(port int, dir string) []string {
		pw, acl := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
		if out, err := exec.Command(passwd, "-c", "-b", pw, "vrpc", "s3cret").CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
		// May use its own bookkeeping topics, and nothing else.
		if err := os.WriteFile(acl, []byte("user vrpc\ntopic readwrite vrpc~/#\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		me, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "mosquitto.conf")
		text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\nuser %s\n", port, pw, acl, me.Username)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"-c", conf}
	})
	b, err := rpcbus.New(rpcbus.Config{Type: "mqtt", Brokers: []string{addr}, Settings: map[string]any{"username": "vrpc", "password": "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = b.Publish(ctx, "vrpc.requests.demo", &rpcbus.Message{Value: []byte("x")})
	t.Logf("Publish: %v", err)
	if !errors.Is(err, rpcbus.ErrForbidden) || !strings.Contains(err.Error(), `may not publish to "vrpc/requests/demo"`) {
		t.Errorf("Publish: %v\nwant an error wrapping ErrForbidden naming the topic", err)
	}
	// Mosquitto's acl_file grants every SUBSCRIBE and filters at delivery,
	// so a SUBACK 0x87 needs an auth plugin: not tested here.
}

// TestDeniedRedis: a command the Redis ACL forbids (XADD, here) fails at
// once with an error wrapping rpcbus.ErrForbidden that names the user and
// the ACL to grant.
func TestDeniedRedis(t *testing.T) {
	t.Parallel()
	addr := privateBroker(t, needBinary(t, "redis-server", "redis-server"), func(port int, dir string) []string {
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
			"--user", "vrpc", "on", ">s3cret", "~*", "&*", "+@all", "-xadd"}
	})
	b, err := rpcbus.New(rpcbus.Config{Type: "redis", Brokers: []string{addr}, Settings: map[string]any{"username": "vrpc", "password": "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.(rpcbus.TopicCreator).CreateTopics(ctx, "vrpc.requests.demo"); err != nil {
		t.Fatal(err)
	}
	err = b.Publish(ctx, "vrpc.requests.demo", &rpcbus.Message{Value: []byte("x")})
	t.Logf("Publish: %v", err)
	if !errors.Is(err, rpcbus.ErrForbidden) || errors.Is(err, rpcbus.ErrUnavailable) || !strings.Contains(err.Error(), `user "vrpc"`) ||
		!strings.Contains(err.Error(), "ACL SETUSER vrpc") {
		t.Errorf("Publish: %v\nwant an error wrapping ErrForbidden, naming the user and the ACL", err)
	}
}
