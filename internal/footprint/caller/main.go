// Command caller is the client-only program that the footprint command
// measures: the vRPC client over one bus (Kafka, which the root package
// links; NATS when built with -tags footprint_nats) and a plain grpc-go
// conn with the interceptor, as an edge device would run it.
//
// It loads -f (a client YAML), opens the client, stays idle for -idle,
// then calls demo.Ping at -rate calls per second (open loop, at most
// -concurrency in flight) for -duration, and prints one line per phase on
// stdout ("idle", "load", "done ok=N failed=M late=L") for the footprint
// command to follow. A rate of 0 stays idle until SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
)

func main() {
	file := flag.String("f", "client.yaml", "client configuration file")
	idle := flag.Duration("idle", 5*time.Second, "how long to stay idle before the load")
	rate := flag.Int("rate", 1000, "calls per second during the load; 0: stay idle until SIGTERM")
	duration := flag.Duration("duration", time.Minute, "how long the load lasts")
	concurrency := flag.Int("concurrency", 256, "most calls in flight at once; a call that would exceed it is late")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := vrpc.InitClient(vrpc.WithConfigFile(*file)); err != nil {
		log.Fatal(err)
	}
	defer vrpc.Close()
	conn, err := grpc.NewClient("vrpc:///demo",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(vrpc.Interceptor()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := demo.NewDemoClient(conn)

	fmt.Println("idle")
	if *rate <= 0 {
		<-ctx.Done()
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(*idle):
	}

	fmt.Println("load")
	var ok, failed, late atomic.Int64
	var wg sync.WaitGroup
	slots := make(chan struct{}, *concurrency)
	req := &demo.Request{Message: "footprint"}
	start := time.Now()
	end := start.Add(*duration)
	for i := 0; ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(*rate))
		if !at.Before(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		select {
		case slots <- struct{}{}:
		default:
			late.Add(1)
			slots <- struct{}{}
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := client.Ping(cctx, req); err != nil {
				failed.Add(1)
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	fmt.Printf("done ok=%d failed=%d late=%d\n", ok.Load(), failed.Load(), late.Load())
	<-ctx.Done() // stay up to be measured after the load, until SIGTERM
	os.Exit(0)
}
