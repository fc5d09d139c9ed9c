// Package testenv finds the external programs that some tests run
// (VictoriaLogs, VictoriaMetrics, Prometheus, Alertmanager, Filebeat, nginx,
// keepalived). A plain `go test ./...` never downloads or builds anything:
// a test whose program is missing skips and names the make target that
// provides it. The Makefile's test targets install every program and set
// ACCESSLOG_REQUIRE_EXTERNAL=1, under which such a skip is a failure, so a
// missing install step cannot pass CI quietly.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// RequireEnv is the variable that turns a missing program into a failure.
const RequireEnv = "ACCESSLOG_REQUIRE_EXTERNAL"

// Required reports whether missing programs fail tests (RequireEnv=1).
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Binary returns the path in the environment variable envVar, which the
// Makefile sets to the program that `make makeTarget` installs. When it is
// unset or names no file, the test skips (fails under RequireEnv=1).
func Binary(t testing.TB, envVar, makeTarget string) string {
	t.Helper()
	p := os.Getenv(envVar)
	if p == "" {
		Missing(t, makeTarget, "%s is not set", envVar)
		return ""
	}
	if _, err := os.Stat(p); err != nil {
		Missing(t, makeTarget, "%s=%s: %v", envVar, p, err)
		return ""
	}
	return p
}

// LookPath returns the path of a program found on PATH (Debian packages),
// which `make makeTarget` installs. When it is not found, the test skips
// (fails under RequireEnv=1).
func LookPath(t testing.TB, name, makeTarget string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, makeTarget, "%s is not on PATH", name)
		return ""
	}
	return p
}

// Missing skips the test because something it needs from the environment
// is absent (a program, a file a package installs, a capability), naming
// the make target that provides it; under RequireEnv=1 it fails instead.
// It does not return.
func Missing(t testing.TB, makeTarget, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + fmt.Sprintf("; `make %s` provides it", makeTarget)
	if Required() {
		t.Fatalf("%s (%s=1: a missing external program is a failure)", msg, RequireEnv)
	}
	t.Skip(msg)
}
