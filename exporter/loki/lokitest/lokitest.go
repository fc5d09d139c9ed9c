// Package lokitest is the log store of tests: Receiver, an in-process Loki
// push endpoint that keeps what it is sent and injects faults, for the
// delivery-contract tests that run in a plain `go test`; and a runner for
// VictoriaLogs (built by scripts/install-victorialogs.sh), the real
// Loki-protocol store of the tests that need one. Tests only.
package lokitest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a started store.
type Process struct {
	URL string // http://127.0.0.1:PORT
	cmd *exec.Cmd
	log *os.File
	Dir string
}

// Stop kills the process by its PID and waits for it.
func (p *Process) Stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.log.Close()
}

// LogTail is the end of the process's output, for failure messages.
func (p *Process) LogTail() string {
	b, _ := os.ReadFile(p.log.Name())
	return tail(string(b), 4000)
}

// StartVictoriaLogs runs VictoriaLogs with its data under dir.
func StartVictoriaLogs(bin, dir string) (*Process, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p, err := start(dir, "victoria-logs.log", bin, "-httpListenAddr=127.0.0.1:"+strconv.Itoa(port),
		"-storageDataPath="+filepath.Join(dir, "vl-data"), "-retentionPeriod=100y")
	if err != nil {
		return nil, err
	}
	p.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := p.waitReady("/health", time.Minute); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func start(dir, logName, bin string, args ...string) (*Process, error) {
	lf, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group: a test binary killed by a timeout does not
	// leave it behind attached to our terminal's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	return &Process{cmd: cmd, log: lf, Dir: dir}, nil
}

func (p *Process) waitReady(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		// Signal 0 fails once the process is gone; a process that exited
		// but is not reaped yet still takes it, so a bad config shows as a
		// timeout with the log tail, which says why.
		if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return fmt.Errorf("%s exited before ready:\n%s", filepath.Base(p.cmd.Path), p.LogTail())
		}
		resp, err := http.Get(p.URL + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s%s after %v:\n%s", filepath.Base(p.cmd.Path), p.URL, path, d, p.LogTail())
}

// Stream is one label set and its entries.
type Stream struct {
	Labels  map[string]string
	Key     string // the label set as pushed, {a="b", ...}
	Entries []Entry
}

// Count is the number of entries per stream, keyed by the label values of
// names joined with "/".
func Count(streams []Stream, names ...string) map[string]int {
	out := map[string]int{}
	for _, s := range streams {
		var k []string
		for _, n := range names {
			k = append(k, s.Labels[n])
		}
		out[strings.Join(k, "/")] += len(s.Entries)
	}
	return out
}

// Total is the number of entries in streams.
func Total(streams []Stream) int {
	n := 0
	for _, s := range streams {
		n += len(s.Entries)
	}
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
