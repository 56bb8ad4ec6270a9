// Package deploy holds the sample systemd unit, Dockerfile and build
// script of deploy/README.md, and the tests that check them without a
// container engine.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSystemdUnit: systemd-analyze verify finds nothing wrong with the
// unit (with ExecStart's binary replaced by one that exists here), and the
// unit runs vrpc serve as a non-root user and reloads with SIGHUP.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("vrpc-serve.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Type=simple", "User=vrpc", "ExecStart=/usr/local/bin/vrpc serve -f /etc/vrpc/server.yaml",
		"ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
	} {
		if !slices.Contains(strings.Split(string(unit), "\n"), want) {
			t.Errorf("vrpc-serve.service has no line %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit is not verified")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "vrpc-serve.service")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/vrpc", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", file).CombinedOutput()
	// verify exits 0 on an unknown key, with a warning: both fail the test.
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// goBuild matches the go build command of a shell line, from the
// environment before it to the package built.
var goBuild = regexp.MustCompile(`(?m)^\s*(?:RUN\s+)?(.*?)\bgo build (.*) \./cmd/vrpc\s*$`)

// buildCommand returns the CGO_ENABLED assignment and the go build flags
// (without -o and its argument), split at spaces, of the one go build line
// of file.
func buildCommand(t *testing.T, file string) (env, flags []string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := goBuild.FindAllStringSubmatch(string(b), -1)
	if len(m) != 1 {
		t.Fatalf("%s: %d go build lines of ./cmd/vrpc, want 1", file, len(m))
	}
	for _, f := range strings.Fields(m[0][1]) {
		if strings.HasPrefix(f, "CGO_ENABLED=") {
			env = append(env, f)
		}
	}
	fs := strings.Fields(m[0][2])
	for i := 0; i < len(fs); i++ {
		if fs[i] == "-o" {
			i++
			continue
		}
		flags = append(flags, fs[i])
	}
	return env, flags
}

// TestBuildFlagsAgree: the Dockerfile builds vrpc as deploy/build.sh does:
// static (CGO_ENABLED=0), -trimpath, stripped.
func TestBuildFlagsAgree(t *testing.T) {
	dEnv, dFlags := buildCommand(t, "Dockerfile")
	sEnv, sFlags := buildCommand(t, "build.sh")
	want := `-trimpath -ldflags="-s -w"`
	if strings.Join(dFlags, " ") != want || strings.Join(sFlags, " ") != want {
		t.Errorf("go build flags: Dockerfile %q, build.sh %q, want both %q", dFlags, sFlags, want)
	}
	if !slices.Equal(dEnv, []string{"CGO_ENABLED=0"}) || !slices.Equal(sEnv, []string{"CGO_ENABLED=0"}) {
		t.Errorf("go build environment: Dockerfile %q, build.sh %q, want both CGO_ENABLED=0", dEnv, sEnv)
	}
	docker, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM golang:1.26 AS build", "USER 65532:65532", `ENTRYPOINT ["vrpc"]`} {
		if !strings.Contains(string(docker), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
