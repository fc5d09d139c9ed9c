//go:build soak

package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The local stack's addresses (deploy/local/README.md), and the soak's own.
const (
	nginxURL    = "http://127.0.0.1:28080"
	upstreamCtl = "http://127.0.0.1:28089"
	kafkaCtl    = "http://127.0.0.1:29099"
	promURL     = "http://127.0.0.1:29190"
	webhookURL  = "http://127.0.0.1:29195"
	proxyAddr   = "127.0.0.1:29110" // the fault proxy in front of the log store
	topic       = "nginxlog"
)

var (
	brokers  = []string{"127.0.0.1:29092", "127.0.0.1:29093", "127.0.0.1:29094"}
	replicas = []string{"127.0.0.1:29717", "127.0.0.1:29718"}
	pidNames = []string{"exporter", "exporter-2"} // stack-down.sh stops them by these
	client   = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
)

func getJSON(u string, v any) error {
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func post(u string, form url.Values) error {
	resp, err := client.PostForm(u, form)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", u, resp.Status, b)
	}
	return nil
}

func ready(base string) bool {
	resp, err := client.Get("http://" + base + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// readyz is what /readyz answers, for the ledger.
func readyz(base string) string {
	resp, err := client.Get("http://" + base + "/readyz")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.Status + ": " + strings.TrimSpace(string(b))
}

// --- the exporter's config -------------------------------------------------

// storeURL is loki.url of deploy/local/exporter.yml: the log store the
// stack's exporter pushes to.
func storeURL(path string) (*url.URL, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		trim := strings.TrimSpace(line)
		if !strings.HasPrefix(line, " ") && trim != "" && !strings.HasPrefix(trim, "#") {
			in = trim == "loki:"
			continue
		}
		if in && strings.HasPrefix(trim, "url:") {
			return url.Parse(strings.Trim(strings.TrimSpace(strings.TrimPrefix(trim, "url:")), `"'`))
		}
	}
	return nil, fmt.Errorf("%s: no loki.url", path)
}

// --- Prometheus --------------------------------------------------------------

type series struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
	Value  [2]any            `json:"value"`
}

func promQuery(q string) ([]series, error) {
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []series `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := getJSON(promURL+"/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	return r.Data.Result, nil
}

func sampleAt(v [2]any) (time.Time, float64) {
	ts, _ := v[0].(float64)
	s, _ := v[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		f = math.NaN()
	}
	return time.UnixMilli(int64(math.Round(ts * 1000))), f
}

// step is an increment of a counter total at a scrape time.
type step struct {
	at  time.Time
	add float64
}

// counted reads every raw sample of the counters sel since since, and turns
// them into increments with restarts handled: a sample is a restart when its
// process's start time (process_start_time_seconds of the same instance)
// changed since the previous sample, or the value fell; a restarted or new
// series adds its whole value (the soak's stack is fresh, so every series
// starts at 0). Nothing is extrapolated, unlike increase(). Steps are in time
// order; their sum is what Prometheus saw counted.
func counted(sel string, since time.Time) ([]step, error) {
	rng := fmt.Sprintf("[%ds]", int(time.Since(since).Seconds())+5)
	starts, err := promQuery("process_start_time_seconds{job=\"accesslog-exporter\"}" + rng)
	if err != nil {
		return nil, err
	}
	type st struct {
		at    time.Time
		start float64
	}
	byInst := map[string][]st{}
	for _, s := range starts {
		for _, v := range s.Values {
			at, f := sampleAt(v)
			byInst[s.Metric["instance"]] = append(byInst[s.Metric["instance"]], st{at, f})
		}
	}
	startAt := func(inst string, at time.Time) float64 {
		ss := byInst[inst]
		i := sort.Search(len(ss), func(i int) bool { return ss[i].at.After(at) })
		if i == 0 {
			return -1
		}
		return ss[i-1].start
	}
	res, err := promQuery(sel + rng)
	if err != nil {
		return nil, err
	}
	var out []step
	for _, s := range res {
		inst := s.Metric["instance"]
		prev, prevStart := 0.0, math.NaN()
		for _, v := range s.Values {
			at, f := sampleAt(v)
			ps := startAt(inst, at)
			add := f - prev
			if f < prev || (!math.IsNaN(prevStart) && ps != prevStart) {
				add = f
			}
			prev, prevStart = f, ps
			if add != 0 {
				out = append(out, step{at, add})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out, nil
}

func total(steps []step) float64 {
	var n float64
	for _, s := range steps {
		n += s.add
	}
	return n
}

// sample is one value of an exporter's own /metrics.
func scrapeValues(base string, names ...string) (map[string]float64, error) {
	resp, err := client.Get("http://" + base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			if strings.HasPrefix(line, n+" ") {
				f, err := strconv.ParseFloat(strings.TrimSpace(line[len(n)+1:]), 64)
				if err == nil {
					out[n] = f
				}
			}
		}
	}
	return out, sc.Err()
}

// --- the webhook recorder ----------------------------------------------------

type received struct {
	ReceivedAt time.Time         `json:"received_at"`
	Status     string            `json:"status"`
	Labels     map[string]string `json:"labels"`
	StartsAt   time.Time         `json:"startsAt"`
}

func webhookAlerts() ([]received, error) {
	var all []received
	err := getJSON(webhookURL+"/alerts", &all)
	return all, err
}

// --- line sets ---------------------------------------------------------------

// lineSet counts lines by a 64-bit hash: a soak's hundreds of thousands of
// lines fit in a few MB, and a collision among them is vanishingly unlikely.
type lineSet struct {
	seed maphash.Seed
	n    map[uint64]int32
	all  int
}

var hashSeed = maphash.MakeSeed()

func newLineSet() *lineSet { return &lineSet{seed: hashSeed, n: map[uint64]int32{}} }

func (s *lineSet) add(line string) {
	s.n[maphash.String(s.seed, line)]++
	s.all++
}

func (s *lineSet) has(line string) bool { return s.n[maphash.String(s.seed, line)] > 0 }

// dups is how many lines are there more than once, beyond the first copy.
func (s *lineSet) dups() int { return s.all - len(s.n) }

// accessLog reads nginx's access.log (and what the soak appended to it).
func accessLog(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			lines = append(lines, l)
		}
	}
	return lines, sc.Err()
}

func accessLogCount(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	buf := make([]byte, 1<<20)
	for {
		k, err := f.Read(buf)
		n += strings.Count(string(buf[:k]), "\n")
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// --- the log store (VictoriaLogs, LogsQL) --------------------------------------

func storeBase(u *url.URL) string { return u.Scheme + "://" + u.Host }

// storeStats is how many entries the store holds, and how many distinct.
func storeStats(base string, since time.Time) (n, distinct int, err error) {
	var rows []map[string]string
	q := "* | stats count() as n, count_uniq(_msg) as u"
	if err := logsQL(base, q, since, func(row map[string]string) { rows = append(rows, row) }); err != nil {
		return 0, 0, err
	}
	for _, r := range rows {
		a, _ := strconv.Atoi(r["n"])
		b, _ := strconv.Atoi(r["u"])
		n += a
		distinct += b
	}
	return n, distinct, nil
}

// storeLines reads every line the store holds.
func storeLines(base string, since time.Time) (*lineSet, error) {
	s := newLineSet()
	err := logsQL(base, "* | fields _msg", since, func(row map[string]string) { s.add(row["_msg"]) })
	return s, err
}

func logsQL(base, q string, since time.Time, each func(map[string]string)) error {
	v := url.Values{
		"query": {q},
		"start": {since.Add(-time.Hour).UTC().Format(time.RFC3339)},
		"end":   {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
	}
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).PostForm(base+"/select/logsql/query", v)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("LogsQL %q: %s: %s", q, resp.Status, b)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		row := map[string]string{}
		if err := dec.Decode(&row); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		each(row)
	}
}

// --- Kafka -----------------------------------------------------------------------

func kafkaClient(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(500 * time.Millisecond)}, opts...)...)
}

// kafkaEnd is the sum of the topic's end offsets: records Filebeat produced.
func kafkaEnd(ctx context.Context) (int64, error) {
	cl, err := kafkaClient()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, ends.Error()
}

// uncommitted is, for group, the records between its committed offsets and
// the topic's end: an upper bound of what a member killed now re-counts.
func uncommitted(ctx context.Context, group string) (int64, error) {
	cl, err := kafkaClient()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	commits, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := commits.Lookup(o.Topic, o.Partition)
		if !ok || c.At < 0 {
			n += o.Offset
			return
		}
		n += o.Offset - c.At
	})
	return n, nil
}

// kafkaLines reads the whole topic (no group) and returns the nginx lines the
// Filebeat events carry.
func kafkaLines(ctx context.Context) (*lineSet, error) {
	end, err := kafkaEnd(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := kafkaClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	s := newLineSet()
	var read int64
	var bad error
	for read < end && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			read++
			var ev struct {
				Message string `json:"message"`
			}
			if err := json.Unmarshal(r.Value, &ev); err != nil && bad == nil {
				bad = fmt.Errorf("record %d/%d: %v", r.Partition, r.Offset, err)
			}
			s.add(ev.Message)
		})
	}
	if bad != nil {
		return s, bad
	}
	return s, ctx.Err()
}

// --- files --------------------------------------------------------------------

func writePid(runDir, name string, pid int) error {
	return os.WriteFile(filepath.Join(runDir, "pids", name), []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

func readPid(runDir, name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(runDir, "pids", name))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// alive is true for a process that exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}
