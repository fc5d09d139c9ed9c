package pipeline

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki/lokitest"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// TestLokiSIGKILLMidBatchLosesNothing kills the real exporter process while
// pushes are in flight, restarts it, and finds every line in Loki: what was
// not acknowledged was not committed, so the restart reads it again.
func TestLokiSIGKILLMidBatchLosesNothing(t *testing.T) {
	store := newStore(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "accesslog-exporter")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/accesslog-exporter/accesslog-exporter/cmd/accesslog-exporter").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Slow pushes keep batches in flight when the kill comes.
	store.SetFault(lokitest.Delay(300 * time.Millisecond))

	c := newCluster(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	const n = 30000
	lines := genRaw(t, n, 13, start)
	produceLines(t, c, lines)

	job := "e2e-kill"
	cfgFile := filepath.Join(dir, "config.yml")
	brokers := ""
	for i, a := range c.ListenAddrs() {
		if i > 0 {
			brokers += ", "
		}
		brokers += a
	}
	cfg := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: g-%s
  commit_interval: 200ms
loki:
  url: %s
  labels:
    job: %s
  batch:
    max_bytes: 64KiB
    max_wait: 100ms
    max_concurrency: 2
  retry:
    min_backoff: 50ms
    max_backoff: 500ms
`, brokers, job, store.URL(), job)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(name string) *exec.Cmd {
		cmd := exec.Command(bin, "run", "--config.file="+cfgFile, "--web.listen-address=127.0.0.1:0")
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logf.Close() })
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		return cmd
	}
	logTail := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		return string(b)
	}

	first := run("first")
	group := "g-" + job + "-loki" // the log path's group commits what the store acknowledged
	testbed.Eventually(t, time.Minute, func() []string {
		if commit, _ := committedTotal(t, c, group); commit <= n/10 {
			return []string{fmt.Sprintf("first run committed %d of %d:\n%s", commit, n, logTail("first"))}
		}
		return nil
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	evict(t, c, group)
	evict(t, c, "g-"+job)
	atKill, _ := committedTotal(t, c, group)
	if atKill >= n {
		t.Fatalf("everything was committed before the kill (%d); the test proves nothing", atKill)
	}
	pushes := store.RequestCount()

	store.SetFault(lokitest.NoFault)
	run("second")
	testbed.Eventually(t, 2*time.Minute, func() []string {
		if commit, end := committedTotal(t, c, group); commit != n || end != n {
			return []string{fmt.Sprintf("after restart committed %d of %d:\n%s", commit, n, logTail("second"))}
		}
		return nil
	})
	// Duplicates: what the killed process had pushed past the last commit
	// is read and pushed again; the bound is the in-flight bound.
	missing := store.Missing(lines)
	dups := store.Duplicates()
	if len(missing) > 0 || dups > n-int(atKill) {
		t.Errorf("%d of %d lines missing from the store after SIGKILL and restart; %d duplicates (at most the %d not committed at the kill)",
			len(missing), n, dups, n-int(atKill))
	}
	t.Logf("killed with %d of %d committed and %d pushes received; the store holds %d entries for %d lines (%d duplicates)",
		atKill, n, pushes, store.Len(), n, dups)
}

// evict removes the group's members, as their session timeout (45 s by
// default) would: a SIGKILLed member never says goodbye.
func evict(t *testing.T, c *kfake.Cluster, group string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	groups, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	for _, g := range groups {
		for _, m := range g.Members {
			lm := kmsg.NewLeaveGroupRequestMember()
			lm.MemberID = m.MemberID
			req.Members = append(req.Members, lm)
		}
	}
	if len(req.Members) == 0 {
		return
	}
	if _, err := req.RequestWith(ctx, cl); err != nil {
		t.Logf("evicting the killed member: %v (the restart waits for its session timeout)", err)
	}
}
