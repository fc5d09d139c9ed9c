package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how the helper ended the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	panic(r)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r)
}

// run calls f and reports how it ended: the path, a skip or a failure.
func run(f func(tb testing.TB) string) (path string, rec *recorder) {
	rec = &recorder{}
	defer func() {
		if v := recover(); v != nil && v != rec {
			panic(v)
		}
	}()
	return f(rec), rec
}

func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TESTENV_PROG", bin)
	t.Setenv("TESTENV_NONE", "")
	t.Setenv("TESTENV_GONE", filepath.Join(t.TempDir(), "gone"))
	for _, tc := range []struct {
		name, env, require string
		path, skip, fail   string
	}{
		{name: "set", env: "TESTENV_PROG", path: bin},
		{name: "unset skips", env: "TESTENV_NONE", skip: "TESTENV_NONE is not set; `make prog` provides it"},
		{name: "no file skips", env: "TESTENV_GONE", skip: "no such file"},
		{name: "unset fails when required", env: "TESTENV_NONE", require: "1", fail: "TESTENV_NONE is not set; `make prog` provides it (ACCESSLOG_REQUIRE_EXTERNAL=1"},
		{name: "set when required", env: "TESTENV_PROG", require: "1", path: bin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireEnv, tc.require)
			path, rec := run(func(tb testing.TB) string { return Binary(tb, tc.env, "prog") })
			if path != tc.path || !contains(rec.skipped, tc.skip) || !contains(rec.failed, tc.fail) {
				t.Errorf("path %q skip %q fail %q; want %q, %q, %q", path, rec.skipped, rec.failed, tc.path, tc.skip, tc.fail)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "testenv-prog"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	t.Setenv(RequireEnv, "")
	path, rec := run(func(tb testing.TB) string { return LookPath(tb, "testenv-prog", "tools") })
	if path != filepath.Join(dir, "testenv-prog") || rec.skipped != "" {
		t.Errorf("found %q, skip %q", path, rec.skipped)
	}
	_, rec = run(func(tb testing.TB) string { return LookPath(tb, "testenv-absent", "tools") })
	if rec.skipped != "testenv-absent is not on PATH; `make tools` provides it" {
		t.Errorf("skip %q", rec.skipped)
	}
	t.Setenv(RequireEnv, "1")
	_, rec = run(func(tb testing.TB) string { return LookPath(tb, "testenv-absent", "tools") })
	if !strings.HasPrefix(rec.failed, "testenv-absent is not on PATH; `make tools` provides it") {
		t.Errorf("fail %q", rec.failed)
	}
}

func contains(got, want string) bool {
	if want == "" {
		return got == ""
	}
	return strings.Contains(got, want)
}
