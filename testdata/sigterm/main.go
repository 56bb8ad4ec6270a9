// Command sigterm is a program that links vRPC's library packages, handles
// SIGTERM itself and sends itself one: it must live to say "handled" and
// exit 0, with nothing else on its output (TestLibraryLeavesSignals).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nextpkg/vrpc"
	_ "github.com/nextpkg/vrpc/rpcbus/all"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vgateway"
	"github.com/nextpkg/vrpc/vserver"
)

var (
	_ = vrpc.Version
	_ = vclient.New
	_ = vserver.NewServer
	_ = vgateway.New
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	<-sig
	// Time for any other handler to act on the signal as well.
	time.Sleep(300 * time.Millisecond)
	fmt.Println("handled")
}
