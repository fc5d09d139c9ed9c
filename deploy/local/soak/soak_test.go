//go:build soak

package soak

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The soak's stated bounds (deploy/local/README.md); each can be overridden
// by the environment variable named beside it.
var (
	stalenessBound = envDuration("SOAK_STALENESS", 10*time.Second)  // request metrics behind real time
	maxRSS         = envFloat("SOAK_MAX_RSS_MIB", 512) * (1 << 20)  // per exporter, at any time
	maxGoroutines  = envFloat("SOAK_MAX_GOROUTINES", 2000)          // per exporter, at any time
	rssSlack       = envFloat("SOAK_RSS_SLACK_MIB", 96) * (1 << 20) // final RSS over the baseline
	goroutineSlack = envFloat("SOAK_GOROUTINE_SLACK", 50)           // final goroutines over the baseline
	clientRate     = int(envFloat("SOAK_RATE", 100))                // client requests per second
	trickleRate    = envFloat("SOAK_LOGGEN_RATE", 20)               // generator lines per second
	burstEvery     = envDuration("SOAK_BURST_EVERY", time.Minute)   // mean gap between bulk bursts
	inflightBound  = envString("SOAK_MAX_INFLIGHT", "1MiB")         // the replicas' loki.max_inflight_bytes
	settleMax      = envDuration("SOAK_SETTLE", 2*time.Minute)      // for resources to return near the baseline
)

const (
	warmup   = 30 * time.Second // load without faults; resource baselines at its end
	cooldown = 45 * time.Second // no fault starts or lasts into the last 45 s
	drainMax = 5 * time.Minute  // for every line to reach every system after the load stops
	// The consumer group of the metrics path (deploy/local/exporter.yml) and
	// of the log path once the exporter runs one per sink (issue 15).
	metricsGroup = "accesslog-exporter"
	logGroup     = "accesslog-exporter-loki"
)

// mayCause maps each fault kind to the alerts it can honestly cause. An alert
// that reaches the webhook must be explained by a fault of its kind whose
// window (from its start to its end plus grace[kind]) holds the alert's start.
var mayCause = map[Kind][]string{
	BrokerStop: {"KafkaBrokersMissing", "KafkaUnderReplicatedPartitions", "KafkaUnderMinISRPartitions",
		"KafkaTopicDurabilityRisk", "KafkaOfflinePartitions", "KafkaHealthPollFailing"},
	ISRShrink:       {"KafkaUnderReplicatedPartitions", "KafkaUnderMinISRPartitions", "KafkaTopicDurabilityRisk"},
	StoreDown:       {"AccessLogLokiPushFailing", logPathLag},
	StoreHang:       {"AccessLogLokiPushFailing", logPathLag},
	StoreSlow:       {logPathLag},
	ReplicaKill:     {"AccessLogExporterDown"},
	ReplicaStop:     {"AccessLogExporterDown"},
	FilebeatRestart: {},
}

// logPathLag stands for the log path's lag alert in mayCause and mustPage:
// any alert named in logPathLagAlerts, or carrying the log group or sink.
const logPathLag = "<log-path lag>"

var logPathLagAlerts = []string{"AccessLogLogPathLagHigh", "AccessLogLogPathNearRetention"}

func isLogPathLag(a received) bool {
	return slices.Contains(logPathLagAlerts, a.Labels["alertname"]) ||
		a.Labels["consumergroup"] == logGroup || a.Labels["sink"] == "logs"
}

// The log path's lag alert (AccessLogLogPathLagHigh) pages on records:
// more than 100k behind and growing, for 10m (20 s scaled). A store-down
// fault therefore writes outageBurst generator lines as it starts, and must
// page when Prometheus saw the log group that far behind for longer than the
// alert's for: (plus evaluation); the ledger says when it was not required.
const (
	logLagThreshold = 100000
	logLagFor       = 30 * time.Second
)

var outageBurst = int(envFloat("SOAK_OUTAGE_BURST", 120000))

// grace is how long after a fault ends an alert may still start because of
// it: the scaled rules' windows and for: durations (deploy/local divides them
// by 30), and for a SIGKILL the session timeout during which the dead member
// still holds its partitions.
var grace = map[Kind]time.Duration{
	BrokerStop: 30 * time.Second, ISRShrink: 30 * time.Second,
	StoreDown: 60 * time.Second, StoreHang: 60 * time.Second, StoreSlow: 60 * time.Second,
	ReplicaKill: SessionTimeout + 30*time.Second, ReplicaStop: 30 * time.Second, FilebeatRestart: 30 * time.Second,
}

// mustPage: a fault of the kind lasting at least minFor must have one of
// these alerts reach the webhook, starting between the fault's start and its
// end plus grace. A log-store fault pages with the log path's lag alert,
// or with AccessLogLokiPushFailing, which Alertmanager's inhibit rules let
// silence the lag alert (the cause pages, not its symptom): when the push
// alert fires first the lag alert never reaches the webhook (seen in a
// 30-minute soak: the lag alert firing in Prometheus, inhibited).
var mustPage = map[Kind]struct {
	minFor time.Duration
	alerts []string
}{
	BrokerStop: {20 * time.Second, []string{"KafkaBrokersMissing"}},
	StoreDown:  {30 * time.Second, []string{logPathLag, "AccessLogLokiPushFailing"}},
	StoreHang:  {30 * time.Second, []string{logPathLag, "AccessLogLokiPushFailing"}},
}

// applied is a fault as it happened.
type applied struct {
	Fault
	start, end time.Time // when it was applied and lifted
	ready      time.Time // a restarted replica: when it was ready again
	exposure   int64     // a kill or stop: records its groups had not committed (metrics; log, -1 unknown)
	logExp     int64
	unseen     int64 // a kill: what the replica may count after its last scrape (2 s at its rate)
	err        error
}

// exempt is when the request metrics may be stale because of this fault: a
// killed replica's partitions stay with the dead member until its session
// times out; a stopped Filebeat ships nothing.
func (a *applied) exempt() (from, to time.Time, ok bool) {
	switch a.Kind {
	case ReplicaKill:
		to := a.start.Add(SessionTimeout)
		if a.ready.After(to) {
			to = a.ready
		}
		return a.start, to.Add(15 * time.Second), true
	case FilebeatRestart:
		return a.start, a.end.Add(15 * time.Second), true
	}
	return time.Time{}, time.Time{}, false
}

type resources struct {
	baseRSS, baseG, peakRSS, peakG, lastRSS, lastG float64
	peakAt                                         time.Time
}

type soak struct {
	t       *testing.T
	here    string // deploy/local
	runDir  string
	start   time.Time // load start
	plan    Plan
	proxy   *storeProxy
	store   *url.URL
	reps    []*proc
	fb      *proc
	comp    *completions
	app     *appender
	ledger  []string
	mu      sync.Mutex
	faults  []*applied
	res     []*resources
	bursts  []string
	notes   []string // violations seen while running
	alerted map[string]bool
	loadEnd time.Time // when the load stopped (guarded by mu)
	// judged is when the soak ended and its own checks began: reading
	// every line back loads the machine, and an alert that starts then (a
	// scrape timing out) is not about the system under test.
	judged time.Time
	direct int64 // lines the generator produced into Kafka, not through nginx's log (guarded by mu)
}

func (s *soak) add(key string, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ledger = append(s.ledger, fmt.Sprintf("%-36s %v", key+":", v))
}

func (s *soak) violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.notes = append(s.notes, msg)
	s.mu.Unlock()
	s.t.Errorf("%s", msg)
}

func TestSoak(t *testing.T) {
	duration := envDuration("SOAK_DURATION", 3*time.Minute)
	rate := envFloat("SOAK_FAULT_RATE", 3)
	seed := uint64(time.Now().UnixNano() % 1e6)
	if v := os.Getenv("SOAK_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", v, err)
		}
		seed = n
	}
	replay := fmt.Sprintf("make soak SEED=%d DURATION=%s FAULT_RATE=%g", seed, duration, rate)
	fmt.Printf("soak: seed %d; replay with: %s\n", seed, replay)
	wd, _ := os.Getwd()
	s := &soak{t: t, here: filepath.Dir(wd), comp: &completions{}, alerted: map[string]bool{}}
	s.runDir = envString("ACCESSLOG_LOCAL_RUN", filepath.Join(s.here, ".run"))
	s.plan = NewPlan(seed, duration, rate, warmup, cooldown)
	fmt.Print("soak: schedule: ", s.plan)
	s.add("soak", "seed "+strconv.FormatUint(seed, 10))
	s.add("replay", replay)
	s.add("bounds", fmt.Sprintf("staleness %s; RSS %.0f MiB (final: baseline + %.0f MiB); goroutines %.0f (final: baseline + %.0f)",
		stalenessBound, maxRSS/(1<<20), rssSlack/(1<<20), maxGoroutines, goroutineSlack))
	s.add("load", fmt.Sprintf("client %d req/s (%s), generator %g lines/s, a bulk burst every %s on average",
		clientRate, strings.Join(clientHosts, ", "), trickleRate, burstEvery))
	s.add("replicas", fmt.Sprintf("%s, loki.max_inflight_bytes %s, log store behind the proxy %s", strings.Join(replicas, " "), inflightBound, proxyAddr))
	defer s.writeLedger()

	s.setup()
	if t.Failed() {
		return
	}
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var load sync.WaitGroup
	s.startLoad(ctx, &load, seed)
	mctx, stopMon := context.WithCancel(context.Background())
	var mon sync.WaitGroup
	mon.Add(1)
	go func() { defer mon.Done(); s.monitor(mctx) }()

	// Faults, each in its own goroutine at its time.
	var inj sync.WaitGroup
	for _, f := range s.plan.Faults {
		a := &applied{Fault: f, logExp: -1}
		s.mu.Lock()
		s.faults = append(s.faults, a)
		s.mu.Unlock()
		inj.Add(1)
		go func() { defer inj.Done(); s.inject(a) }()
	}
	time.Sleep(time.Until(s.start.Add(warmup)))
	s.baseline()
	time.Sleep(time.Until(s.start.Add(duration)))
	inj.Wait()
	stopLoad()
	load.Wait()
	loadEnd := time.Now()
	s.mu.Lock()
	s.loadEnd = loadEnd
	s.mu.Unlock()
	s.add("load ran", fmt.Sprintf("%s to %s", s.start.UTC().Format(time.TimeOnly), loadEnd.UTC().Format(time.TimeOnly)))

	s.drain()
	stopMon()
	mon.Wait()
	s.judged = time.Now()
	s.final(loadEnd)
}

// setup puts the soak's pieces into the running stack: the fault proxy in
// front of the log store, two exporter replicas pushing through it (in
// place of stack-up's one), and a Filebeat the soak can restart.
func (s *soak) setup() {
	t := s.t
	cfg := filepath.Join(s.here, "exporter.yml")
	var err error
	if s.store, err = storeURL(cfg); err != nil {
		t.Fatal(err)
	}
	if s.proxy, err = startProxy(proxyAddr, &url.URL{Scheme: s.store.Scheme, Host: s.store.Host}); err != nil {
		t.Fatalf("proxy: %v", err)
	}
	t.Cleanup(s.proxy.close)
	repCfg := filepath.Join(s.runDir, "soak-exporter.yml")
	if err := exporterConfig(cfg, repCfg, s.store, inflightBound); err != nil {
		t.Fatal(err)
	}
	// Take over stack-up's exporter once it has counted what stack-up's
	// probes wrote, so the totals start from a known place.
	logPath := filepath.Join(s.runDir, "nginx", "logs", "access.log")
	if !waitFor(context.Background(), 60*time.Second, func() bool {
		n, err1 := accessLogCount(logPath)
		steps, err2 := counted(`accesslog_http_requests_total`, time.Now().Add(-10*time.Minute))
		return firstErr(err1, err2) == nil && total(steps) >= float64(n)
	}) {
		t.Logf("soak: stack-up's exporter had not counted stack-up's own requests after 60 s; totals may start short")
	}
	if pid, err := readPid(s.runDir, pidNames[0]); err == nil && alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		waitFor(context.Background(), 20*time.Second, func() bool { return !alive(pid) })
	}
	bin := filepath.Join(s.runDir, "bin", "accesslog-exporter")
	for i := range replicas {
		r := newReplica(i, bin, repCfg, s.runDir)
		if err := r.start(); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		s.reps = append(s.reps, r)
		s.res = append(s.res, &resources{})
	}
	if err := setTargets(s.runDir, replicas...); err != nil {
		t.Fatal(err)
	}
	for i, r := range replicas {
		if !waitFor(context.Background(), 90*time.Second, func() bool { return ready(r) }) {
			t.Fatalf("replica %d (%s) not ready after 90 s; see %s", i, r, filepath.Join(s.runDir, "logs", pidNames[i]+".log"))
		}
	}
	if s.fb, err = adoptFilebeat(s.runDir); err != nil {
		t.Fatalf("filebeat: %v", err)
	}
	if !waitFor(context.Background(), 60*time.Second, func() bool { return getJSON("http://127.0.0.1:29196/stats", &map[string]any{}) == nil }) {
		t.Fatalf("filebeat (restarted by the soak) has no stats after 60 s")
	}
	// Prometheus scrapes both replicas.
	if !waitFor(context.Background(), 30*time.Second, func() bool {
		r, err := promQuery(`count(up{job="accesslog-exporter"} == 1)`)
		return err == nil && len(r) == 1 && r[0].Value[1] == "2"
	}) {
		t.Fatalf("Prometheus does not scrape both replicas after 30 s")
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	s.app = &appender{f: f}
}

func (s *soak) startLoad(ctx context.Context, wg *sync.WaitGroup, seed uint64) {
	s.start = time.Now()
	rng := rand.New(rand.NewPCG(seed, 0x10ad))
	lg := filepath.Join(s.runDir, "bin", "loggen")
	wg.Add(3)
	go func() { defer wg.Done(); runClient(ctx, rand.New(rand.NewPCG(seed, 0xc1)), clientRate, s.comp) }()
	go func() {
		defer wg.Done()
		if err := loggen(ctx, lg, s.app, "--seed", strconv.FormatUint(seed*1000+1, 10), "--rate", fmt.Sprint(trickleRate)); err != nil {
			s.violation("generator trickle: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 2; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(rng.ExpFloat64() * float64(burstEvery))):
			}
			s.burst("", 5000+rng.IntN(15000), seed*1000+uint64(i))
		}
	}()
}

// kafkaBurst has the generator produce n lines, wrapped as Filebeat 8
// ships them, straight into Kafka: a backlog for the log path's lag alert
// that does not queue the client's lines behind it in Filebeat (through
// access.log it would, and the metrics would look stale for Filebeat's sake).
func (s *soak) kafkaBurst(n int, seed uint64) {
	at := time.Since(s.start).Round(time.Second)
	cmd := exec.Command(filepath.Join(s.runDir, "bin", "loggen"), "--format", "main_timed", "--envelope", "--rate", "0",
		"--count", strconv.Itoa(n), "--seed", strconv.FormatUint(seed, 10), "--kafka.brokers", strings.Join(brokers, ","), "--kafka.topic", topic)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.violation("generator burst into Kafka: %v: %s", err, out)
	}
	s.mu.Lock()
	s.bursts = append(s.bursts, fmt.Sprintf("%s: %d lines into Kafka (store-down)", at, n))
	s.direct += int64(n)
	s.mu.Unlock()
}

// burst appends n generator lines to the access log as fast as it goes.
func (s *soak) burst(why string, n int, seed uint64) {
	at := time.Since(s.start).Round(time.Second)
	if err := loggen(context.Background(), filepath.Join(s.runDir, "bin", "loggen"), s.app, "--seed", strconv.FormatUint(seed, 10),
		"--rate", "0", "--count", strconv.Itoa(n)); err != nil {
		s.violation("generator burst: %v", err)
	}
	s.mu.Lock()
	s.bursts = append(s.bursts, strings.TrimSpace(fmt.Sprintf("%s: %d lines %s", at, n, why)))
	s.mu.Unlock()
}

// inject applies one fault at its time and lifts it after its length.
func (s *soak) inject(a *applied) {
	time.Sleep(time.Until(s.start.Add(a.At)))
	ctx := context.Background()
	if a.Kind == ReplicaKill || a.Kind == ReplicaStop {
		var err error
		if a.exposure, err = uncommitted(ctx, metricsGroup); err != nil {
			s.violation("fault %s: the metrics group's offsets: %v", a.Fault, err)
		}
		if n, gerr := uncommitted(ctx, logGroup); gerr == nil && groupExists(ctx, logGroup) {
			a.logExp = n
		}
		// A stop waits for a scrape of its final counts
		// (--web.shutdown-grace): only a SIGKILL hides counts.
		if a.Kind == ReplicaKill {
			a.unseen = unscraped(replicas[a.Target])
		}
	}
	a.start = time.Now()
	var err error
	switch a.Kind {
	case BrokerStop:
		err = post(fmt.Sprintf("%s/brokers/%d/stop", kafkaCtl, a.Target), nil)
	case ISRShrink:
		err = post(fmt.Sprintf("%s/partitions/%d/shrink-isr", kafkaCtl, a.Target), nil)
	case StoreDown, StoreHang, StoreSlow:
		err = s.proxy.set(a.Kind, a.Delay)
		if a.Kind == StoreDown && outageBurst > 0 {
			go s.kafkaBurst(outageBurst, uint64(a.At))
		}
	case ReplicaKill, ReplicaStop:
		if a.Kind == ReplicaKill {
			err = s.reps[a.Target].signal(syscall.SIGKILL, 10*time.Second)
		} else {
			err = s.reps[a.Target].signal(syscall.SIGTERM, 30*time.Second)
		}
	case FilebeatRestart:
		err = s.fb.signal(syscall.SIGTERM, 30*time.Second)
	}
	if err != nil {
		a.err = err
		s.violation("fault %s: applying: %v", a.Fault, err)
	}
	time.Sleep(time.Until(a.start.Add(a.For)))
	switch a.Kind {
	case BrokerStop:
		err = post(fmt.Sprintf("%s/brokers/%d/start", kafkaCtl, a.Target), nil)
	case ISRShrink:
		err = post(fmt.Sprintf("%s/partitions/%d/restore-isr", kafkaCtl, a.Target), nil)
	case StoreDown, StoreHang, StoreSlow:
		err = s.proxy.set("", 0)
	case ReplicaKill, ReplicaStop:
		err = s.reps[a.Target].start()
	case FilebeatRestart:
		err = s.fb.start()
	}
	a.end = time.Now()
	if err != nil {
		s.violation("fault %s: lifting: %v", a.Fault, err)
		return
	}
	if a.Kind == ReplicaKill || a.Kind == ReplicaStop {
		addr := replicas[a.Target]
		var gone bool
		var last string
		if waitFor(ctx, 2*time.Minute, func() bool { gone, last = s.reps[a.Target].exited(); return gone || ready(addr) }) && !gone {
			a.ready = time.Now()
		} else if gone {
			s.violation("fault %s: replica %s exited after its restart: %s", a.Fault, addr, last)
		} else {
			s.violation("fault %s: replica %s not ready 2 min after its restart: %s", a.Fault, addr, readyz(addr))
		}
	}
}

// unscraped is what a replica counts in 2 s at its current rate (its
// counters' increase over the last 5 s, read from it directly): the most a
// SIGKILL can hide from Prometheus, counted after the last
// scrape (1 s) and committed (commit_interval 500 ms) before the end.
func unscraped(addr string) int64 {
	read := func() float64 {
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var n float64
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "accesslog_http_requests_total{") {
				if f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
					n += f
				}
			}
		}
		return n
	}
	a := read()
	time.Sleep(time.Second)
	b := read()
	if a < 0 || b < a {
		return 0
	}
	return int64(math.Ceil((b - a) * 2))
}

func groupExists(ctx context.Context, group string) bool {
	n, err := uncommitted(ctx, group)
	end, eerr := kafkaEnd(ctx)
	return err == nil && eerr == nil && n < end
}

// monitor checks the invariants while the soak runs: resources every 5 s,
// new alerts and the metrics' staleness every 10 s.
func (s *soak) monitor(ctx context.Context) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.sampleResources(false)
		if i%2 == 1 {
			s.checkAlerts(false)
			s.mu.Lock()
			until := s.loadEnd
			s.mu.Unlock()
			if until.IsZero() {
				until = time.Now()
			}
			if st, err := s.staleness(until); err == nil && st.worst > stalenessBound {
				s.t.Logf("soak: request metrics %s behind at %s (bound %s)", st.worst.Round(100*time.Millisecond), st.worstAt.Sub(s.start).Round(time.Second), stalenessBound)
			}
		}
	}
}

func (s *soak) sampleResources(final bool) {
	for i, addr := range replicas {
		v, err := scrapeValues(addr, "process_resident_memory_bytes", "go_goroutines")
		if err != nil || len(v) < 2 {
			continue
		}
		rss, g := v["process_resident_memory_bytes"], v["go_goroutines"]
		s.mu.Lock()
		r := s.res[i]
		if rss > r.peakRSS {
			r.peakRSS, r.peakAt = rss, time.Now()
		}
		r.peakG = max(r.peakG, g)
		r.lastRSS, r.lastG = rss, g
		s.mu.Unlock()
		if !final && (rss > maxRSS || g > maxGoroutines) {
			s.violation("replica %s: RSS %.0f MiB, %0.f goroutines (bounds %.0f MiB, %.0f)", addr, rss/(1<<20), g, maxRSS/(1<<20), maxGoroutines)
		}
	}
}

func (s *soak) baseline() {
	s.sampleResources(false)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.res {
		r.baseRSS, r.baseG = r.lastRSS, r.lastG
	}
}

// --- staleness -------------------------------------------------------------------

type staleness struct {
	worst, worstExempt     time.Duration
	worstAt, worstExemptAt time.Time
	over                   []string // windows over the bound outside the exemptions
}

// staleness compares, every second from the end of the warm-up to until,
// what Prometheus had counted on the client's vhosts with what the client
// had completed: the metrics are as old as the last moment by which
// everything completed was counted. Re-counts after a kill make the count
// run ahead, so this errs towards fresh.
func (s *soak) staleness(until time.Time) (staleness, error) {
	var st staleness
	steps, err := counted(fmt.Sprintf(`accesslog_http_requests_total{vhost=~%q}`, strings.Join(clientHosts, "|")), s.start.Add(-time.Minute))
	if err != nil {
		return st, err
	}
	s.mu.Lock()
	faults := slices.Clone(s.faults)
	s.mu.Unlock()
	var overFrom time.Time
	var cum float64
	j := 0
	for t := s.start.Add(warmup); !t.After(until); t = t.Add(time.Second) {
		for ; j < len(steps) && !steps[j].at.After(t); j++ {
			cum += steps[j].add
		}
		var lag time.Duration
		if float64(s.comp.countAt(t)) > cum {
			at, ok := s.comp.latestBelow(cum)
			if !ok {
				at = s.start
			}
			lag = t.Sub(at)
		}
		exempt := false
		for _, a := range faults {
			if from, to, ok := a.exempt(); ok && !a.start.IsZero() && !t.Before(from) && (a.end.IsZero() || !t.After(to)) {
				exempt = true
			}
		}
		if exempt {
			if lag > st.worstExempt {
				st.worstExempt, st.worstExemptAt = lag, t
			}
			continue
		}
		if lag > st.worst {
			st.worst, st.worstAt = lag, t
		}
		switch {
		case lag > stalenessBound && overFrom.IsZero():
			overFrom = t
		case lag <= stalenessBound && !overFrom.IsZero():
			st.over = append(st.over, fmt.Sprintf("%s-%s", overFrom.Sub(s.start).Round(time.Second), t.Sub(s.start).Round(time.Second)))
			overFrom = time.Time{}
		}
	}
	if !overFrom.IsZero() {
		st.over = append(st.over, fmt.Sprintf("%s-", overFrom.Sub(s.start).Round(time.Second)))
	}
	return st, nil
}

// --- alerts ------------------------------------------------------------------------

// trafficAlerts are the alerts about what nginx served. The generator's
// vhosts (every vhost but the client's) carry its realistic mix, with a
// share of 5xx, 499 and slow requests; over the scaled 10 s windows of the
// local rules a few of them are enough, so these alerts on those vhosts are
// explained by the traffic itself. On the client's vhosts (no 5xx, nothing
// slow) nothing explains them. NginxTrafficStopped is not among them: traffic
// never stops.
var trafficAlerts = []string{"NginxHigh5xxRatio", "NginxUpstreamErrorSurge", "NginxClientClosedSurge",
	"NginxLatencyObjectiveBreached", "NginxAvailabilityBudgetBurnFast", "NginxAvailabilityBudgetBurnSlow",
	"NginxLatencyBudgetBurnFast", "NginxLatencyBudgetBurnSlow"}

// explain finds the faults that explain an alert: a fault whose kind may
// cause it and whose window holds the alert's start.
func (s *soak) explain(a received) []string {
	if v := a.Labels["vhost"]; v != "" && !slices.Contains(clientHosts, v) && slices.Contains(trafficAlerts, a.Labels["alertname"]) {
		return []string{"generator traffic"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Labels["alertname"] == "NginxTrafficStopped" && !s.loadEnd.IsZero() && a.StartsAt.After(s.loadEnd) {
		return []string{"load stopped"}
	}
	var why []string
	for _, f := range s.faults {
		if f.start.IsZero() {
			continue
		}
		end := f.end
		if end.IsZero() {
			end = time.Now()
		}
		if a.StartsAt.Before(f.start.Add(-2*time.Second)) || a.StartsAt.After(end.Add(grace[f.Kind])) {
			continue
		}
		for _, name := range mayCause[f.Kind] {
			if name == a.Labels["alertname"] || (name == logPathLag && isLogPathLag(a)) {
				why = append(why, fmt.Sprintf("%s@%s", f.Kind, f.At.Round(time.Second)))
				break
			}
		}
	}
	return why
}

// checkAlerts reads the webhook: every firing alert that started during the
// soak must be explained. final also checks that the faults that must page
// did, and writes the ledger's alert lines.
func (s *soak) checkAlerts(final bool) {
	all, err := webhookAlerts()
	if err != nil {
		if final {
			s.violation("webhook: %v", err)
		}
		return
	}
	type seen struct {
		a   received
		why []string
	}
	var firing []seen
	late := 0
	for _, a := range all {
		if a.Status != "firing" || a.StartsAt.Before(s.start) {
			continue
		}
		if !s.judged.IsZero() && a.StartsAt.After(s.judged) {
			late++
			continue
		}
		key := a.Labels["alertname"] + a.StartsAt.String() + fmt.Sprint(a.Labels)
		why := s.explain(a)
		if len(why) == 0 {
			s.mu.Lock()
			first := !s.alerted[key]
			s.alerted[key] = true
			s.mu.Unlock()
			if first {
				s.violation("unexplained alert %s %v, started %s into the soak", a.Labels["alertname"], a.Labels, a.StartsAt.Sub(s.start).Round(time.Second))
			}
		}
		firing = append(firing, seen{a, why})
	}
	if !final {
		return
	}
	names := map[string][]string{}
	for _, f := range firing {
		names[f.a.Labels["alertname"]] = append(names[f.a.Labels["alertname"]], fmt.Sprintf("%s(%s)",
			f.a.StartsAt.Sub(s.start).Round(time.Second), strings.Join(f.why, ",")))
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.add("alert seen "+k, strings.Join(slices.Compact(names[k]), " "))
	}
	if len(keys) == 0 {
		s.add("alerts seen", "none")
	}
	if late > 0 {
		s.add("alerts after the soak", fmt.Sprintf("%d notifications started while the soak read everything back (not judged)", late))
	}
	s.mu.Lock()
	faults := slices.Clone(s.faults)
	s.mu.Unlock()
	for _, f := range faults {
		need, ok := mustPage[f.Kind]
		if !ok || f.For < need.minFor || f.start.IsZero() {
			continue
		}
		if slices.Contains(need.alerts, logPathLag) {
			over, err := logLagOver(f.start, f.end)
			if err != nil {
				s.violation("fault %s: the log group's lag: %v", f.Fault, err)
				continue
			}
			if over < logLagFor {
				s.add(fmt.Sprintf("expected page %s@%s", f.Kind, f.At.Round(time.Second)),
					fmt.Sprintf("not required: the log group was over %d records behind for %s only (the alert needs %s)", logLagThreshold, over, logLagFor))
				continue
			}
		}
		paged, pagedAt := "", time.Time{} // the earliest page
		for _, x := range firing {
			a := x.a
			// Firing at some moment of the fault's window: it started in
			// it, or had started before (an earlier fault's page still on)
			// and was not resolved before the window began.
			if a.StartsAt.After(f.end.Add(grace[f.Kind])) || resolvedBy(all, a).Before(f.start) {
				continue
			}
			for _, name := range need.alerts {
				if (name == a.Labels["alertname"] || (name == logPathLag && isLogPathLag(a))) && (paged == "" || a.StartsAt.Before(pagedAt)) {
					pagedAt = a.StartsAt
					paged = fmt.Sprintf("%s after %s", a.Labels["alertname"], a.StartsAt.Sub(f.start).Round(time.Second))
					if a.StartsAt.Before(f.start) {
						paged = fmt.Sprintf("%s, firing since %s before", a.Labels["alertname"], f.start.Sub(a.StartsAt).Round(time.Second))
					}
				}
			}
		}
		if paged == "" {
			s.add(fmt.Sprintf("expected page %s@%s", f.Kind, f.At.Round(time.Second)), "MISSING "+strings.Join(need.alerts, " or "))
			s.violation("fault %s did not page (%s)", f.Fault, strings.Join(need.alerts, " or "))
		} else {
			s.add(fmt.Sprintf("expected page %s@%s", f.Kind, f.At.Round(time.Second)), paged)
		}
	}
}

// logLagOver is how long, between from and to, Prometheus saw the log
// path's group more than logLagThreshold records behind.
func logLagOver(from, to time.Time) (time.Duration, error) {
	d := int(to.Sub(from).Seconds())
	q := fmt.Sprintf(`max(count_over_time((sink_consumergroup_topic:kafka_consumergroup_lag:sum{sink="logs"} > %d)[%ds:1s]))`, logLagThreshold, d)
	var r struct {
		Data struct {
			Result []series `json:"result"`
		} `json:"data"`
	}
	u := fmt.Sprintf("%s/api/v1/query?query=%s&time=%d", promURL, url.QueryEscape(q), to.Unix())
	if err := getJSON(u, &r); err != nil {
		return 0, err
	}
	if len(r.Data.Result) == 0 {
		return 0, nil
	}
	_, n := sampleAt(r.Data.Result[0].Value)
	return time.Duration(n) * time.Second, nil
}

// resolvedBy is when the webhook was told that alert a (same labels, same
// start) resolved; far in the future while it has not.
func resolvedBy(all []received, a received) time.Time {
	for _, r := range all {
		if r.Status == "resolved" && r.StartsAt.Equal(a.StartsAt) && maps.Equal(r.Labels, a.Labels) {
			return r.ReceivedAt
		}
	}
	return time.Now().Add(time.Hour)
}

// --- the end -------------------------------------------------------------------

// drain waits, after the load, until every line written has reached Kafka,
// the log store (distinct) and Prometheus' counters, or drainMax passes.
func (s *soak) drain() {
	ctx := context.Background()
	logPath := filepath.Join(s.runDir, "nginx", "logs", "access.log")
	base := storeBase(s.store)
	start := time.Now()
	var last string
	var prev []float64 // Prometheus' totals of the last polls
	ok := waitFor(ctx, drainMax, func() bool {
		lines, err1 := accessLogCount(logPath)
		k, err2 := kafkaEnd(ctx)
		_, distinct, err3 := storeStats(base, s.start)
		steps, err4 := counted(`accesslog_http_requests_total`, s.start.Add(-10*time.Minute))
		if err := firstErr(err1, err2, err3, err4); err != nil {
			last = err.Error()
			return false
		}
		s.mu.Lock()
		lines += int(s.direct)
		s.mu.Unlock()
		p := total(steps)
		prev = append(prev, p)
		last = fmt.Sprintf("access.log and direct %d, Kafka %d, store %d distinct, Prometheus %.0f", lines, k, distinct, p)
		// Prometheus is done when it has every record, or has not moved for
		// three polls (a shortfall is then reported by the final check).
		steady := len(prev) >= 4 && prev[len(prev)-4] == p
		time.Sleep(3 * time.Second)
		return k >= int64(lines) && distinct >= lines && (p >= float64(k) || steady)
	})
	s.add("drain", fmt.Sprintf("%s after %s (%s)", map[bool]string{true: "converged", false: "NOT converged"}[ok], time.Since(start).Round(time.Second), last))
	// Resources once everything is quiet again: Go hands freed memory back
	// to the system gradually, so wait for it, up to settleMax.
	start = time.Now()
	back := waitFor(ctx, settleMax, func() bool {
		time.Sleep(5 * time.Second)
		s.sampleResources(true)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range s.res {
			if r.lastRSS > r.baseRSS+rssSlack || r.lastG > r.baseG+goroutineSlack {
				return false
			}
		}
		return true
	})
	s.add("resources settled", fmt.Sprintf("%v after %s", back, time.Since(start).Round(time.Second)))
}

func (s *soak) final(loadEnd time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Fault timeline.
	s.mu.Lock()
	faults := slices.Clone(s.faults)
	bursts := slices.Clone(s.bursts)
	direct := s.direct
	s.mu.Unlock()
	for _, a := range faults {
		line := fmt.Sprintf("%s; applied %s, lifted %s", a.Fault, a.start.Sub(s.start).Round(100*time.Millisecond), a.end.Sub(s.start).Round(100*time.Millisecond))
		if !a.ready.IsZero() {
			line += fmt.Sprintf(", ready %s", a.ready.Sub(s.start).Round(100*time.Millisecond))
		}
		if a.Kind == ReplicaKill || a.Kind == ReplicaStop {
			line += fmt.Sprintf(", uncommitted at the signal: metrics %d, log %s", a.exposure, orNA(a.logExp))
		}
		if a.err != nil {
			line += ", ERROR " + a.err.Error()
		}
		s.add("fault", line)
	}
	s.add("bursts", fmt.Sprintf("%d: %s", len(bursts), strings.Join(bursts, ", ")))

	// (1) Nothing lost; duplicates counted.
	lines, err := accessLog(filepath.Join(s.runDir, "nginx", "logs", "access.log"))
	if err != nil {
		s.violation("access.log: %v", err)
		return
	}
	nginx := newLineSet()
	for _, l := range lines {
		nginx.add(l)
	}
	kafka, kerr := kafkaLines(ctx)
	store, serr := storeLines(storeBase(s.store), s.start.Add(-10*time.Minute))
	if err := firstErr(kerr, serr); err != nil {
		s.violation("reading back: %v", err)
		return
	}
	var lostKafka, lostStore []string
	for _, l := range lines {
		if !kafka.has(l) {
			lostKafka = append(lostKafka, l)
		}
		if !store.has(l) {
			lostStore = append(lostStore, l)
		}
	}
	s.add("access.log lines", fmt.Sprintf("%d (%d distinct): client %d completed + %d failed, generator %d", nginx.all, len(nginx.n),
		s.comp.done.Load(), s.comp.failed.Load(), s.app.n.Load()))
	s.add("client answers by class", s.classes())
	s.add("Kafka records", fmt.Sprintf("%d (%d distinct, %d re-sent by Filebeat, %d from the generator straight into Kafka), %d access.log lines missing",
		kafka.all, len(kafka.n), kafka.dups(), direct, len(lostKafka)))
	s.add("log store entries", fmt.Sprintf("%d (%d distinct, %d duplicates), %d access.log lines missing", store.all, len(store.n), store.dups(), len(lostStore)))
	if len(store.n) < len(kafka.n) {
		s.violation("the log store has %d distinct lines, Kafka %d", len(store.n), len(kafka.n))
	}
	if len(lostKafka) > 0 {
		s.violation("%d lines of access.log never reached Kafka, e.g. %q", len(lostKafka), lostKafka[0])
	}
	if len(lostStore) > 0 {
		s.violation("%d lines of access.log are not in the log store, e.g. %q", len(lostStore), lostStore[0])
	}
	// Duplicates in the store: Filebeat's re-sends, plus what the log path
	// had not committed when a replica was killed or stopped, plus what a
	// push timed out on while the store was slow (stored, unacknowledged).
	dupBound := int64(kafka.dups())
	bound := []string{fmt.Sprintf("Filebeat %d", kafka.dups())}
	for _, a := range faults {
		switch a.Kind {
		case ReplicaKill, ReplicaStop:
			n := a.logExp
			if n < 0 {
				n = a.exposure // one group for both sinks
			}
			dupBound += n
			bound = append(bound, fmt.Sprintf("%s@%s %d", a.Kind, a.At.Round(time.Second), n))
		case StoreSlow, StoreHang:
			n := int64(float64(clientRate)+trickleRate) * int64(a.For/time.Second)
			dupBound += n
			bound = append(bound, fmt.Sprintf("%s@%s %d", a.Kind, a.At.Round(time.Second), n))
		}
	}
	s.add("store duplicate bound", fmt.Sprintf("%d = %s", dupBound, strings.Join(bound, " + ")))
	if int64(store.dups()) > dupBound {
		s.violation("%d duplicates in the log store, over the bound %d", store.dups(), dupBound)
	}

	// (2) Prometheus' totals equal Kafka's records, plus the re-counts: what
	// the metrics group had not committed when a replica was killed, or
	// stopped (a stop abandons what the log store has not acknowledged within
	// loki.shutdown_timeout; with one group for both sinks the metrics lose
	// their commit with it).
	steps, err := counted(`accesslog_http_requests_total`, s.start.Add(-10*time.Minute))
	if err != nil {
		s.violation("Prometheus: %v", err)
	} else {
		p := int64(total(steps))
		recount := p - int64(kafka.all)
		var allowed, unseen int64
		var per []string
		for _, a := range faults {
			if a.Kind == ReplicaKill || a.Kind == ReplicaStop {
				allowed += a.exposure
				unseen += a.unseen
				per = append(per, fmt.Sprintf("%s@%s +%d/-%d", a.Kind, a.At.Round(time.Second), a.exposure, a.unseen))
			}
		}
		// Below: a killed replica counts, commits, and dies before
		// Prometheus scrapes it again; those lines are never seen
		// (docs/delivery.md, "Metrics across a crash"): at most what it
		// counts in a scrape interval and a commit interval, taken as 2 s
		// at its rate. A stopped one is scraped once more after its final
		// commit, so it hides nothing.
		s.add("Prometheus requests", fmt.Sprintf("%d: Kafka's %d records %+d; allowed -%d..+%d: per signal +re-count (the metrics group's uncommitted records) / -unscraped (2 s of the replica's counting): %s",
			p, kafka.all, recount, unseen, allowed, strings.Join(per, ", ")))
		if recount < -unseen || recount > allowed {
			s.violation("Prometheus counted %d requests for %d records in Kafka: %+d, allowed -%d..+%d", p, kafka.all, recount, unseen, allowed)
		}
	}

	// (3) Fresh metrics.
	if st, err := s.staleness(loadEnd); err != nil {
		s.violation("staleness: %v", err)
	} else {
		s.add("max metric staleness", fmt.Sprintf("%s at %s (bound %s); while a killed replica's partitions or Filebeat were out: %s at %s",
			st.worst.Round(100*time.Millisecond), st.worstAt.Sub(s.start).Round(time.Second), stalenessBound,
			st.worstExempt.Round(100*time.Millisecond), st.worstExemptAt.Sub(s.start).Round(time.Second)))
		if len(st.over) > 0 {
			s.violation("request metrics more than %s behind outside the exemptions during %s (worst %s)", stalenessBound, strings.Join(st.over, ", "), st.worst.Round(100*time.Millisecond))
		}
	}

	// (4) Honest alerts.
	s.checkAlerts(true)

	// (5) Bounded resources.
	s.mu.Lock()
	res := slices.Clone(s.res)
	s.mu.Unlock()
	for i, r := range res {
		s.add("replica "+replicas[i], fmt.Sprintf("RSS baseline %.0f MiB, peak %.0f MiB (%s), final %.0f MiB; goroutines baseline %.0f, peak %.0f, final %.0f",
			r.baseRSS/(1<<20), r.peakRSS/(1<<20), r.peakAt.Sub(s.start).Round(time.Second), r.lastRSS/(1<<20), r.baseG, r.peakG, r.lastG))
		if r.lastRSS > r.baseRSS+rssSlack || r.lastG > r.baseG+goroutineSlack {
			s.violation("replica %s did not return near its baseline: RSS %.0f MiB (baseline %.0f + %.0f), goroutines %.0f (baseline %.0f + %.0f)",
				replicas[i], r.lastRSS/(1<<20), r.baseRSS/(1<<20), rssSlack/(1<<20), r.lastG, r.baseG, goroutineSlack)
		}
	}
}

func (s *soak) classes() string {
	var parts []string
	s.comp.classes.Range(func(k, v any) bool {
		parts = append(parts, fmt.Sprintf("%s %d", k, v.(interface{ Load() int64 }).Load()))
		return true
	})
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func (s *soak) writeLedger() {
	status := "PASS"
	if s.t.Failed() {
		status = "FAIL"
	}
	s.mu.Lock()
	notes := slices.Clone(s.notes)
	s.mu.Unlock()
	for _, n := range notes {
		s.add("violation", n)
	}
	s.add("result", status)
	s.mu.Lock()
	text := "schedule: " + s.plan.String() + strings.Join(s.ledger, "\n") + "\n"
	s.mu.Unlock()
	dir := filepath.Join(s.here, ".run", "ledgers")
	_ = os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, fmt.Sprintf("soak-%d-%s.txt", s.plan.Seed, time.Now().UTC().Format("20060102T150405")))
	_ = os.WriteFile(path, []byte(text), 0o644)
	fmt.Printf("\n--- ledger soak (%s)\n%s", path, text)
}

// --- small things ------------------------------------------------------------------

func orNA(n int64) string {
	if n < 0 {
		return "n/a (one group)"
	}
	return strconv.FormatInt(n, 10)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func envString(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envDuration(k string, def time.Duration) time.Duration {
	if v := os.Getenv(k); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		panic(fmt.Sprintf("%s=%q: not a duration", k, v))
	}
	return def
}

func envFloat(k string, def float64) float64 {
	if v := os.Getenv(k); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
		panic(fmt.Sprintf("%s=%q: not a number", k, v))
	}
	return def
}
