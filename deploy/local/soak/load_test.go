//go:build soak

package soak

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The soak's own vhosts: one static, one proxied to the upstream. Staleness
// is measured on these (the client knows when each request completed).
var clientHosts = []string{"soak.local", "api-soak.local"}

// clientMix is the steady traffic: 200, 201, 404 and 429 from static files
// and from the upstream. No 5xx: the soak's load must not page by itself.
var clientMix = []struct{ host, path string }{
	{"soak.local", "/"}, {"soak.local", "/about.html"}, {"soak.local", "/assets/app.js"},
	{"soak.local", "/missing"},
	{"api-soak.local", "/api/v1/users/1"}, {"api-soak.local", "/api/v1/orders?page=2"},
	{"api-soak.local", "/api/v1/items/9"}, {"api-soak.local", "/api/v1/users?status=201"},
	{"api-soak.local", "/api/v1/gone?status=404"}, {"api-soak.local", "/api/v1/slow-down?status=429"},
}

// upstreamLatencies are drawn from every 20 s: all under the latency
// objective's 0.5 s threshold.
var upstreamLatencies = []string{"1ms", "5ms", "20ms", "60ms", "150ms"}

// completions is the client's record of when requests completed: samples of
// the running count, every 100 ms.
type completions struct {
	mu      sync.Mutex
	at      []time.Time
	n       []int64
	done    atomic.Int64
	failed  atomic.Int64
	classes sync.Map // "2xx" -> *atomic.Int64
}

func (c *completions) sample(now time.Time) {
	c.mu.Lock()
	c.at = append(c.at, now)
	c.n = append(c.n, c.done.Load())
	c.mu.Unlock()
}

// latestBelow is the last sampled time when at most n requests had
// completed: everything completed until then is in a count of n.
func (c *completions) latestBelow(n float64) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.n), func(i int) bool { return float64(c.n[i]) > n })
	if i == 0 {
		return time.Time{}, false
	}
	return c.at[i-1], true
}

// countAt is the count completed by t (from the samples).
func (c *completions) countAt(t time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.at), func(i int) bool { return c.at[i].After(t) })
	if i == 0 {
		return 0
	}
	return c.n[i-1]
}

func (c *completions) class(code int) {
	k := fmt.Sprintf("%dxx", code/100)
	v, _ := c.classes.LoadOrStore(k, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// runClient sends rate requests per second through nginx until ctx ends,
// and changes the upstream's latency every 20 s.
func runClient(ctx context.Context, rng *rand.Rand, rate int, c *completions) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	sampler := time.NewTicker(100 * time.Millisecond)
	defer sampler.Stop()
	latency := time.NewTicker(20 * time.Second)
	defer latency.Stop()
	c.sample(time.Now())
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			c.sample(time.Now())
			return
		case now := <-sampler.C:
			c.sample(now)
			continue
		case <-latency.C:
			_ = post(upstreamCtl+"/config", url.Values{"latency": {upstreamLatencies[rng.IntN(len(upstreamLatencies))]}})
			continue
		case <-tick.C:
		}
		r := clientMix[rng.IntN(len(clientMix))]
		select {
		case sem <- struct{}{}:
		default:
			c.failed.Add(1) // nginx is more than 64 requests behind: not sent
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			req, _ := http.NewRequest(http.MethodGet, nginxURL+r.path, nil)
			req.Host = r.host
			req.Header.Set("User-Agent", "accesslog-soak")
			resp, err := client.Do(req)
			if err != nil {
				c.failed.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			c.class(resp.StatusCode)
			c.done.Add(1)
		}()
	}
}

// appender writes whole lines to nginx's access.log with O_APPEND, one
// write per chunk of complete lines, so nginx's own lines never land inside
// ours.
type appender struct {
	mu sync.Mutex
	f  *os.File
	n  atomic.Int64
}

func (a *appender) copyFrom(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<16)
	buf := make([]byte, 0, 1<<16)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		a.mu.Lock()
		_, err := a.f.Write(buf)
		a.mu.Unlock()
		buf = buf[:0]
		return err
	}
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			buf = append(buf, line...)
			a.n.Add(1)
			if len(buf) > 48<<10 || br.Buffered() == 0 {
				if ferr := flush(); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return flush()
		}
		if err != nil && err != bufio.ErrBufferFull {
			return err
		}
	}
}

// loggen runs the traffic generator with args, its lines appended to the
// access log; it returns when the generator exits (ctx ends the trickle).
func loggen(ctx context.Context, bin string, a *appender, args ...string) error {
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, bin, append([]string{"--format", "main_timed"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	cerr := a.copyFrom(out)
	werr := cmd.Wait()
	if cerr != nil {
		return cerr
	}
	if werr != nil && ctx.Err() == nil {
		return fmt.Errorf("%v: %s", werr, strings.TrimSpace(stderr.String()))
	}
	return nil
}
