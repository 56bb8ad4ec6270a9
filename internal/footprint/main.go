// Command footprint measures what vRPC costs a small machine, the figures
// in the README's "Footprint" section: the stripped, static size of a
// program that only calls (./internal/footprint/caller), of a server
// program linking one bus (./internal/footprint/server) and of the vrpc
// command; the resident memory of each process idle, and while the caller
// makes -rate calls per second for -load. Run it from the repository root:
//
//	go run ./internal/footprint                        # embedded Kafka, 1 min at 1,000 calls/s
//	go run ./internal/footprint -bus nats -load 30m    # the soak on NATS at 127.0.0.1:4222
//
// On the embedded bus the vrpc command serves with rpc_bus.type embedded
// (the README's zero-install path: the broker is in its process), and the
// single-bus server joins a broker this command hosts. On NATS both serve
// through the server at -nats. The target is the demo service, in this
// process. Every -sample it prints each process's resident set (VmRSS);
// at the end, the figures as a Markdown table.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/all" // the nats bus, to remove what a run left
	"github.com/nextpkg/vrpc/rpcbus/embedded"
)

var (
	busFlag = flag.String("bus", "embedded", "embedded (in-process Kafka) or nats")
	natsURL = flag.String("nats", "127.0.0.1:4222", "with -bus nats: the NATS server")
	rate    = flag.Int("rate", 1000, "calls per second the caller makes during the load")
	load    = flag.Duration("load", time.Minute, "how long the load lasts")
	idle    = flag.Duration("idle", 5*time.Second, "how long each process idles before it is measured idle")
	sample  = flag.Duration("sample", 10*time.Second, "how often resident memory is printed during the load")
	only    = flag.String("only", "", "measure only this server: cli or server (default both)")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *busFlag != "embedded" && *busFlag != "nats" {
		log.Fatalf("-bus %q: want embedded or nats", *busFlag)
	}
	dir, err := os.MkdirTemp("", "vrpc-footprint-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	bins := map[string]string{"caller": "./internal/footprint/caller", "server": "./internal/footprint/server", "vrpc": "./cmd/vrpc"}
	sizes := map[string]int64{}
	for _, name := range []string{"caller", "server", "vrpc"} {
		sizes[name] = build(dir, name, bins[name])
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	target := demoserver.Serve(lis, "footprint")
	defer target.Stop()

	var rows []row
	for _, srv := range []string{"cli", "server"} {
		if *only != "" && *only != srv {
			continue
		}
		rows = append(rows, measure(dir, srv, lis.Addr().String()))
	}

	fmt.Printf("\n%s/%s, %d cores, %s, %s bus, %d calls/s for %v:\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(),
		time.Now().UTC().Format("2006-01-02"), *busFlag, *rate, *load)
	fmt.Println("| program | stripped, static | idle RSS | RSS under load (end / highest) | calls ok / failed |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| client only (`internal/footprint/caller`) | %s | %s | %s / %s | |\n", mb(sizes["caller"]), mib(rows[0].callerIdle), mib(rows[0].callerEnd), mib(rows[0].callerMax))
	for _, r := range rows {
		name, size := "`vrpc serve` (rpc_bus."+*busFlag+")", sizes["vrpc"]
		if r.server == "server" {
			name, size = "one-bus server (`internal/footprint/server`)", sizes["server"]
		}
		fmt.Printf("| %s | %s | %s | %s / %s | %s |\n", name, mb(size), mib(r.idle), mib(r.end), mib(r.max), r.result)
	}
}

// row is what one server's run measured, and its caller's.
type row struct {
	server                           string
	idle, end, max                   int64
	callerIdle, callerEnd, callerMax int64
	result                           string
}

func build(dir, name, pkg string) int64 {
	out := filepath.Join(dir, name)
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", out}
	if *busFlag == "nats" && name != "vrpc" {
		args = append(args, "-tags", "footprint_nats")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("go build %s: %v", pkg, err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		log.Fatal(err)
	}
	return fi.Size()
}

// measure runs one server (cli: vrpc serve; server: the one-bus program)
// and a caller against it.
func measure(dir, which, targetAddr string) row {
	unique := strings.ToLower(rand.Text()[:8])
	requests, responses := "footprint-"+unique+".requests", "footprint-"+unique+".responses"
	busType, broker := "nats", *natsURL
	switch {
	case *busFlag == "embedded" && which == "cli":
		busType, broker = "embedded", freeAddr()
	case *busFlag == "embedded":
		b, err := embedded.Start("127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		defer b.Close()
		busType, broker = "kafka", b.Addr()
	}
	admin := freeAddr()
	_, port, _ := net.SplitHostPort(admin)
	serverYAML := fmt.Sprintf(`name: footprint-%s
host: 127.0.0.1
port: %s
rpc_bus:
  type: %s
  brokers: [%q]
topics:
  request: %s
  response: %s
targets:
  demo:
    endpoint: %q
`, unique, port, busType, broker, requests, responses, targetAddr)
	clientBus := busType
	if clientBus == "embedded" {
		clientBus = "kafka"
	}
	clientYAML := fmt.Sprintf(`client_id: footprint
rpc_bus:
  type: %s
  brokers: [%q]
topics:
  request: %s
  response: %s
`, clientBus, broker, requests, responses)
	write(dir, which+"-server.yaml", serverYAML)
	write(dir, which+"-client.yaml", clientYAML)

	var srv *exec.Cmd
	if which == "cli" {
		srv = exec.Command(filepath.Join(dir, "vrpc"), "serve", "-f", filepath.Join(dir, which+"-server.yaml"), "--log-level", "error")
	} else {
		srv = exec.Command(filepath.Join(dir, "server"), "-f", filepath.Join(dir, which+"-server.yaml"))
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer stop(srv)
	waitReady("http://" + admin + "/readyz")
	if busType == "nats" {
		defer remove(broker, requests, responses, "footprint-"+unique)
	}

	caller := exec.Command(filepath.Join(dir, "caller"), "-f", filepath.Join(dir, which+"-client.yaml"),
		"-idle", idle.String(), "-rate", strconv.Itoa(*rate), "-duration", load.String())
	caller.Stderr = os.Stderr
	out, err := caller.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := caller.Start(); err != nil {
		log.Fatal(err)
	}
	defer stop(caller)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(prefix string) string {
		for l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		log.Fatalf("the caller ended before %q", prefix)
		return ""
	}

	r := row{server: which}
	expect("idle")
	time.Sleep(*idle * 9 / 10) // both processes idle and connected
	r.idle, r.callerIdle = rss(srv), rss(caller)
	log.Printf("%s: idle: server %s, caller %s", which, mib(r.idle), mib(r.callerIdle))
	expect("load")
	start := time.Now()
	done := make(chan string, 1)
	go func() { done <- expect("done") }()
	tick := time.NewTicker(*sample)
	defer tick.Stop()
	for r.result == "" {
		select {
		case l := <-done:
			r.result = strings.TrimPrefix(l, "done ")
		case <-tick.C:
		}
		s, c := rss(srv), rss(caller)
		r.end, r.callerEnd = s, c
		r.max, r.callerMax = max(r.max, s), max(r.callerMax, c)
		log.Printf("%s: %6.0fs  server %s  caller %s", which, time.Since(start).Seconds(), mib(s), mib(c))
	}
	return r
}

func write(dir, name, content string) {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		log.Fatal(err)
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(url string) {
	for limit := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(limit) {
			log.Fatalf("%s not ready within 1m (last: %v)", url, err)
		}
	}
}

func stop(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// remove deletes what a run made on the NATS server: its streams and
// consumers.
func remove(broker string, topics ...string) {
	bus, err := rpcbus.New(rpcbus.Config{Type: "nats", Brokers: []string{broker}})
	if err != nil {
		log.Printf("removing the run's streams: %v", err)
		return
	}
	defer bus.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, ok := bus.(rpcbus.Remover); ok {
		if err := r.Remove(ctx, rpcbus.Leftovers{Topics: topics[:2], Prefix: topics[2]}); err != nil {
			log.Printf("removing the run's streams: %v", err)
		}
	}
}

// rss is the process's resident set in bytes (VmRSS).
func rss(cmd *exec.Cmd) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mb(n int64) string  { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
