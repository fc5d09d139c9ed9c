//go:build soak

package soak

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// --- the log-store proxy --------------------------------------------------------

// storeProxy stands between the exporters and the log store. Down closes its
// listener and every connection (the exporters see a refused connection, as
// from a stopped store); hang accepts requests and never answers until the
// mode changes (the exporters' push timeout fires); slow delays each request.
type storeProxy struct {
	addr   string
	target *url.URL

	mu    sync.Mutex
	mode  Kind // "" passes through
	delay time.Duration
	srv   *http.Server
	wake  chan struct{} // closed when the mode changes
}

func startProxy(addr string, target *url.URL) (*storeProxy, error) {
	p := &storeProxy{addr: addr, target: target, wake: make(chan struct{})}
	return p, p.listen()
}

func (p *storeProxy) listen() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(p.target)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 16, ResponseHeaderTimeout: time.Minute}
	// A push the exporter gave up on (its timeout, during hang and slow) is
	// the fault working, not news: answer 502 without a log line each.
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		mode, delay, wake := p.mode, p.delay, p.wake
		p.mu.Unlock()
		switch mode {
		case StoreHang:
			select {
			case <-wake:
			case <-r.Context().Done():
				return
			}
		case StoreSlow:
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	p.srv = srv
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// set switches the mode ("" to pass everything through again).
func (p *storeProxy) set(mode Kind, delay time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	was := p.mode
	p.mode, p.delay = mode, delay
	close(p.wake)
	p.wake = make(chan struct{})
	switch {
	case mode == StoreDown && was != StoreDown:
		return p.srv.Close()
	case mode != StoreDown && was == StoreDown:
		return p.listen()
	}
	return nil
}

func (p *storeProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.wake)
	p.wake = make(chan struct{})
	if p.mode != StoreDown {
		_ = p.srv.Close()
	}
	p.mode = StoreDown
}

// --- processes the soak runs ----------------------------------------------------

// proc is a process the soak started: an exporter replica or Filebeat. Its
// PID goes to .run/pids/<name>, so stack-down.sh stops it if the soak dies.
type proc struct {
	name   string
	argv   []string
	env    []string
	dir    string
	runDir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(p.runDir, "logs", p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = p.env, p.dir, logf, logf
	// Its own process group: a signal to the soak is not one to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	return writePid(p.runDir, p.name, cmd.Process.Pid)
}

// signal sends sig and waits for the process to exit; SIGTERM turns into
// SIGKILL after grace.
func (p *proc) signal(sig syscall.Signal, grace time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return errors.New(p.name + ": not started")
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: %v", p.name, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	_ = cmd.Process.Kill()
	<-done
	return fmt.Errorf("%s ignored %s for %s; killed", p.name, sig, grace)
}

// exited says whether the process started last has ended, and if so the
// last line of its log: a replica that exits at start is reported at once
// and with its reason, not as "not ready" minutes later.
func (p *proc) exited() (bool, string) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
	default:
		return false, ""
	}
	b, _ := os.ReadFile(filepath.Join(p.runDir, "logs", p.name+".log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return true, lines[len(lines)-1]
}

// adoptFilebeat takes over the Filebeat stack-up.sh started: its command
// line, environment and directory are read from /proc, so the soak can stop
// and start it the same way.
func adoptFilebeat(runDir string) (*proc, error) {
	pid, err := readPid(runDir, "filebeat")
	if err != nil {
		return nil, err
	}
	argv, err := procStrings(pid, "cmdline")
	if err != nil {
		return nil, err
	}
	env, err := procStrings(pid, "environ")
	if err != nil {
		return nil, err
	}
	dir, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return nil, err
	}
	p := &proc{name: "filebeat", argv: argv, env: env, dir: dir, runDir: runDir}
	// Not our child: stop it by PID, then run our own in its place.
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(20 * time.Second); alive(pid); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return p, p.start()
}

func procStrings(pid int, file string) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}

// exporterConfig writes the replicas' config: the stack's exporter.yml with
// the log store's address replaced by the proxy's, and the in-flight bound
// set to inflight (empty keeps the file's): the default 64 MiB takes half an
// hour of the soak's load to fill, so a small one lets a log-store fault
// reach the point where the log path holds back consumption.
func exporterConfig(src, dst string, store *url.URL, inflight string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	s := string(b)
	if !strings.Contains(s, store.Host) {
		return fmt.Errorf("%s: no %s to point at the proxy", src, store.Host)
	}
	if inflight != "" {
		if re := regexp.MustCompile(`(?m)^(\s+max_inflight_bytes:).*$`); re.MatchString(s) {
			s = re.ReplaceAllString(s, "${1} "+inflight)
		} else {
			s = strings.Replace(s, "\nloki:\n", "\nloki:\n  max_inflight_bytes: "+inflight+"\n", 1)
		}
	}
	s = "# Written by the soak (deploy/local/soak): " + filepath.Base(src) + " with the log store behind the fault proxy.\n" +
		strings.ReplaceAll(s, store.Host, proxyAddr)
	return os.WriteFile(dst, []byte(s), 0o644)
}

func newReplica(i int, bin, config, runDir string) *proc {
	return &proc{
		name:   pidNames[i],
		argv:   []string{bin, "--config.file=" + config, "--web.listen-address=" + replicas[i]},
		env:    os.Environ(),
		runDir: runDir,
	}
}

// setTargets points Prometheus' file_sd at the replicas (refreshed every 1 s).
func setTargets(runDir string, addrs ...string) error {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = strconv.Quote(a)
	}
	body := fmt.Sprintf(`[{"targets":[%s]}]`, strings.Join(q, ","))
	tmp := filepath.Join(runDir, "prometheus", "exporters.json.tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(runDir, "prometheus", "exporters.json"))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}
