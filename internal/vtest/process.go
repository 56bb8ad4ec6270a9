package vtest

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// FreeAddr returns a loopback host:port nothing listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StartProcess runs a broker of the test's own (bin with args, its output
// in a file of dir) until the test ends, and returns once it accepts TCP
// connections on addr. The test is skipped when bin is not installed,
// failed under CI=true.
func StartProcess(t testing.TB, dir, addr, bin string, args ...string) {
	t.Helper()
	StartProcessEnv(t, dir, addr, nil, bin, args...)
}

// StartProcessEnv is StartProcess with env added to the process's
// environment.
func StartProcessEnv(t testing.TB, dir, addr string, env []string, bin string, args ...string) {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("%s is not installed: %v", bin, err)
	}
	logName := filepath.Join(dir, filepath.Base(bin)+".log")
	log, err := os.Create(logName)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig kills the broker if the test binary dies without its
	// cleanups; it fires when the thread that started the child ends, so
	// that thread stays locked until the child has exited.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started, exited := make(chan error, 1), make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	for limit := time.Now().Add(90 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logName)
			t.Fatalf("%s exited before listening on %s:\n%s", bin, addr, out)
		default:
		}
		if time.Now().After(limit) {
			out, _ := os.ReadFile(logName)
			t.Fatalf("%s not listening on %s within 90s (%v):\n%s", bin, addr, errors.Unwrap(err), out)
		}
	}
}
