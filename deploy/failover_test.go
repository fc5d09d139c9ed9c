package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/accesslog-exporter/accesslog-exporter/internal/testenv"
)

// The shipped keepalived and nginx configs, run for real: two hosts as
// network namespaces on a bridge (in a third namespace, so the machine's own
// network is never touched), each with Debian's nginx and keepalived. Only
// addresses and file paths differ from what is shipped.
//
// Test subnet, private to the namespaces: web-1 .11, web-2 .12, VIP .10,
// the bridge (the "client") .1.
const (
	testNet    = "10.213.77."
	testVIP    = testNet + "10"
	testWeb1   = testNet + "11"
	testWeb2   = testNet + "12"
	testClient = testNet + "1"

	// Deadlines, from the configs: a failure is seen after fall 2 x interval
	// 1 s, the BACKUP takes over on the next advert (advert_int 1); the
	// MASTER takes the VIP back after rise 3 x 1 s. Generous against a
	// loaded machine, still far below "never".
	electDeadline   = 20 * time.Second
	failDeadline    = 10 * time.Second
	restoreDeadline = 15 * time.Second
)

func TestKeepalivedFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the failover test takes about 10 s")
	}
	ip := lookTool(t, "ip")
	nginx := lookTool(t, "nginx")
	keepalived := lookTool(t, "keepalived")
	lookTool(t, "bash")

	suffix := fmt.Sprint(os.Getpid())
	ns := struct{ web1, web2, br string }{"alxt-web1-" + suffix, "alxt-web2-" + suffix, "alxt-br-" + suffix}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.Command(ip, "netns", "add", ns.br).CombinedOutput(); err != nil {
		testenv.Missing(t, "deploy-test", "cannot create network namespaces here (ip netns add: %v: %s); the failover test needs root and CAP_SYS_ADMIN", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns.br).Run() })
	for _, n := range []string{ns.web1, ns.web2} {
		run("netns", "add", n)
		t.Cleanup(func() { exec.Command(ip, "netns", "del", n).Run() })
	}

	run("-n", ns.br, "link", "add", "br0", "type", "bridge")
	run("-n", ns.br, "addr", "add", testClient+"/24", "dev", "br0")
	run("-n", ns.br, "link", "set", "br0", "up")
	run("-n", ns.br, "link", "set", "lo", "up")
	for _, h := range []struct{ ns, addr, port string }{{ns.web1, testWeb1, "p1"}, {ns.web2, testWeb2, "p2"}} {
		// eth0 inside the host namespace: the interface name the shipped
		// keepalived configs use.
		run("-n", h.ns, "link", "add", "eth0", "type", "veth", "peer", "name", h.port, "netns", ns.br)
		run("-n", h.ns, "addr", "add", h.addr+"/24", "dev", "eth0")
		run("-n", h.ns, "link", "set", "eth0", "up")
		run("-n", h.ns, "link", "set", "lo", "up")
		run("-n", ns.br, "link", "set", h.port, "master", "br0")
		run("-n", ns.br, "link", "set", h.port, "up")
	}

	client := newNetnsClient(t, ns.br)
	dir := t.TempDir()
	addrs := strings.NewReplacer("10.0.0.10/24", testVIP+"/24", "10.0.0.11", testWeb1, "10.0.0.12", testWeb2)
	hosts := map[string]*testHost{}
	for _, h := range []struct{ name, ns, conf string }{
		{"web-1", ns.web1, "nginx/keepalived/keepalived-master.conf"},
		{"web-2", ns.web2, "nginx/keepalived/keepalived-backup.conf"},
	} {
		hd := filepath.Join(dir, h.name)
		check := filepath.Join(hd, "check_nginx.sh")
		conf := nginxSite(t, hd, map[string]string{"$hostname": h.name})
		kconf := filepath.Join(hd, "keepalived.conf")
		data, err := os.ReadFile(h.conf)
		if err != nil {
			t.Fatal(err)
		}
		kdata := strings.ReplaceAll(addrs.Replace(string(data)), "/etc/keepalived/check_nginx.sh", check)
		if err := os.WriteFile(kconf, []byte(kdata), 0o644); err != nil {
			t.Fatal(err)
		}
		script, err := os.ReadFile("nginx/keepalived/check_nginx.sh")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(check, script, 0o755); err != nil {
			t.Fatal(err)
		}
		host := &testHost{t: t, name: h.name, ns: h.ns, dir: hd, ip: ip}
		host.nginxArgs = []string{nginx, "-p", hd, "-c", conf, "-e", filepath.Join(hd, "logs", "error.log"), "-g", "daemon off;"}
		host.nginx = host.start("nginx", host.nginxArgs...)
		host.keepalived = host.start("keepalived", keepalived, "-f", kconf,
			"-p", filepath.Join(hd, "keepalived.pid"), "-r", filepath.Join(hd, "vrrp.pid"), "-c", filepath.Join(hd, "checkers.pid"),
			"-n", "-l", "-D")
		hosts[h.name] = host
	}
	web1, web2 := hosts["web-1"], hosts["web-2"]
	// Show the daemons' own logs when anything below fails, or on demand
	// (DEPLOY_TEST_LOGS=1) to see the VRRP transitions and their timing.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("DEPLOY_TEST_LOGS") != "" {
			for _, h := range []*testHost{web1, web2} {
				for _, f := range []string{"keepalived.out", "nginx.out", "logs/error.log"} {
					data, _ := os.ReadFile(filepath.Join(h.dir, f))
					t.Logf("--- %s %s:\n%s", h.name, f, tail(data, 3000))
				}
			}
		}
	})

	// 1. Both healthy: the MASTER holds the VIP, and only it.
	start := time.Now()
	client.waitFor(t, "web-1", electDeadline, "initial election")
	t.Logf("VIP answered by web-1 %v after start", time.Since(start).Round(time.Millisecond))
	assertVIP(t, web1, web2)

	// 2. nginx stops on the MASTER: the BACKUP must take the VIP.
	web1.stop(web1.nginx, syscall.SIGQUIT)
	stopped := time.Now()
	client.waitFor(t, "web-2", failDeadline, "failover after nginx stopped on web-1")
	failover := time.Since(stopped)
	t.Logf("failover: VIP answered by web-2 %v after nginx stopped on web-1", failover.Round(time.Millisecond))
	assertVIP(t, web2, web1)

	// 3. nginx is back on the MASTER: preempt (the default) moves the VIP
	// back once the check has passed rise times.
	web1.nginx = web1.start("nginx", web1.nginxArgs...)
	restarted := time.Now()
	client.waitFor(t, "web-1", restoreDeadline, "return to web-1 after its nginx restarted")
	t.Logf("failback: VIP answered by web-1 %v after its nginx restarted", time.Since(restarted).Round(time.Millisecond))
	assertVIP(t, web1, web2)
	fmt.Fprintf(os.Stderr, "FAILOVER_SECONDS %.3f\n", failover.Seconds())
}

type testHost struct {
	t                 *testing.T
	name, ns, dir, ip string
	nginxArgs         []string
	nginx, keepalived *daemon
}

// daemon is a started process and the channel closed once it has exited.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs a daemon in the host's namespace, in the foreground and in its
// own process group, and registers its stop.
func (h *testHost) start(label string, args ...string) *daemon {
	h.t.Helper()
	out, err := os.OpenFile(filepath.Join(h.dir, label+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	// ip netns exec execs the command: the PID is the daemon's own.
	cmd := exec.Command(h.ip, append([]string{"netns", "exec", h.ns}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		h.t.Fatalf("%s on %s: %v", label, h.name, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); out.Close(); close(d.done) }()
	h.t.Cleanup(func() { d.stop(syscall.SIGTERM) })
	return d
}

func (h *testHost) stop(d *daemon, sig syscall.Signal) {
	h.t.Helper()
	if !d.stop(sig) {
		h.t.Fatalf("%s on %s did not exit within 5 s of %v", filepath.Base(d.cmd.Args[4]), h.name, sig)
	}
}

// stop signals the daemon's process group (nginx's workers, keepalived's
// children) by the daemon's PID, waits for it to exit, and kills the group
// if it has not within 5 s. It reports whether the signal alone was enough.
func (d *daemon) stop(sig syscall.Signal) bool {
	select {
	case <-d.done:
		return true
	default:
	}
	syscall.Kill(-d.cmd.Process.Pid, sig)
	select {
	case <-d.done:
		return true
	case <-time.After(5 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		return false
	}
}

// assertVIP checks that the VIP is configured on holder and not on other:
// one owner, no split brain.
func assertVIP(t *testing.T, holder, other *testHost) {
	t.Helper()
	has := func(h *testHost) bool {
		out, err := exec.Command(h.ip, "-n", h.ns, "-4", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr on %s: %v\n%s", h.name, err, out)
		}
		return strings.Contains(string(out), " "+testVIP+"/")
	}
	// keepalived removes the VIP from the old holder within an advert;
	// allow it that long.
	deadline := time.Now().Add(3 * time.Second)
	for {
		h, o := has(holder), has(other)
		if h && !o {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("VIP on %s: %v, on %s: %v; want only on %s", holder.name, h, other.name, o, holder.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// netnsClient makes HTTP requests from inside a network namespace: one OS
// thread is moved into it and every request's socket is created there.
type netnsClient struct {
	reqs chan func()
}

func newNetnsClient(t *testing.T, ns string) *netnsClient {
	c := &netnsClient{reqs: make(chan func())}
	ready := make(chan error)
	go func() {
		// The thread is never unlocked: it dies with the goroutine instead
		// of going back to the pool in the wrong namespace.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ready <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ready <- nil
		for fn := range c.reqs {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(c.reqs) })
	return c
}

// whoAnswers asks http://VIP/nginx-health and returns the host name in the
// answer ("ok web-1"), or the error.
func (c *netnsClient) whoAnswers() (string, error) {
	var (
		who string
		err error
	)
	done := make(chan struct{})
	c.reqs <- func() {
		defer close(done)
		var conn net.Conn
		conn, err = net.DialTimeout("tcp", testVIP+":80", 300*time.Millisecond)
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
		fmt.Fprintf(conn, "GET /nginx-health HTTP/1.0\r\nHost: vip\r\n\r\n")
		var resp *http.Response
		resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		if resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
			return
		}
		var ok bool
		if who, ok = strings.CutPrefix(strings.TrimSpace(body.String()), "ok "); !ok {
			err = fmt.Errorf("unexpected body %q", body.String())
		}
	}
	<-done
	return who, err
}

// waitFor polls the VIP until want answers, failing at the deadline with
// what answered last.
func (c *netnsClient) waitFor(t *testing.T, want string, deadline time.Duration, what string) {
	t.Helper()
	end := time.Now().Add(deadline)
	var last string
	for time.Now().Before(end) {
		who, err := c.whoAnswers()
		if err == nil && who == want {
			return
		}
		last = who
		if err != nil {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: VIP not answered by %s within %v; last answer: %s", what, want, deadline, last)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
