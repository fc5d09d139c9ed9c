// Package loki pushes raw lines to Loki (protobuf + snappy, the format
// Promtail uses) and reports which lines Loki has acknowledged, so that
// Kafka offsets are committed only past acknowledged lines.
//
// Lines enter through an Appender per worker and collect in batches by
// bytes and by time; sealed batches are pushed by a bounded number of
// senders. Network errors, 429, 5xx and 4xx answers that are not about the
// content (401, 403, 404) are retried with jittered backoff
// (Retry-After wins), forever by default: Kafka is the buffer. A 4xx is
// the batch's own fault: it is split in halves until the bad entries are
// alone, and those are counted as rejected and let go, so that one bad line
// never holds up a partition. Each batch Retains the Kafka batches (Acker)
// its lines came from and Releases them when it is done.
package loki

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/component"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/credentials"
)

// PushPath is added to a base URL that does not name a path.
const PushPath = "/loki/api/v1/push"

// Options are the client's settings beyond the config file.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the client's metrics; nil for none.
	Registerer prometheus.Registerer
	// UserAgent is sent with every push.
	UserAgent string
	// Transport replaces the HTTP transport (tests); TLS settings of the
	// config are then not applied.
	Transport http.RoundTripper
	// Tracer traces pushes: a loki.push span per batch, linked to the
	// Kafka batches its lines came from, with an event per retry. Nil for
	// none.
	Tracer trace.Tracer
	// Status, when set, gets every push request's outcome and duration:
	// the sender's cycle, as the exporter reports for every component.
	Status *component.Status
}

// errPushRetried is a push the store did not take (no answer, 429, 5xx...).
var errPushRetried = errors.New("loki push to be retried")

// Client pushes batches to one Loki.
type Client struct {
	cfg      config.Loki
	url      string
	auth     string // Authorization header value; empty for none
	ua       string
	hc       *http.Client
	log      *slog.Logger
	tracer   trace.Tracer // nil when tracing is off
	status   *component.Status
	m        *clientMetrics
	streams  *streams
	maxBytes int
	maxLine  int
	meta     bool

	inflight    atomic.Int64 // line bytes added and not yet done with
	outstanding atomic.Int64 // batches sealed and not yet done with

	mu        sync.Mutex
	queue     []*batch
	appenders []*Appender
	wake      chan struct{}
	free      chan *batch

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool

	sampleMu   sync.Mutex
	lastSample map[string]time.Time
}

// New builds a client from a validated config; nothing is sent until Start.
func New(cfg config.Loki, opts Options) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("loki: no url")
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = config.Default().Loki.MaxLineBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "accesslog-exporter"
	}
	u := strings.TrimRight(cfg.URL, "/")
	if !strings.Contains(strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://"), "/") {
		u += PushPath
	}
	c := &Client{
		cfg:        cfg,
		url:        u,
		ua:         opts.UserAgent,
		log:        opts.Logger,
		tracer:     opts.Tracer,
		status:     opts.Status,
		streams:    newStreams(cfg.Labels),
		maxBytes:   int(cfg.Batch.MaxBytes),
		maxLine:    int(cfg.MaxLineBytes),
		meta:       cfg.StructuredMetadata,
		wake:       make(chan struct{}, 1),
		free:       make(chan *batch, 2*cfg.Batch.MaxConcurrency+4),
		lastSample: map[string]time.Time{},
	}
	switch {
	case cfg.Auth.Username != "":
		pw, err := credentials.Secret(cfg.Auth.PasswordFile, "loki.auth.password_file")
		if err != nil {
			return nil, err
		}
		req, _ := http.NewRequest(http.MethodPost, "http://x", nil)
		req.SetBasicAuth(cfg.Auth.Username, pw)
		c.auth = req.Header.Get("Authorization")
	case cfg.Auth.BearerTokenFile != "":
		tok, err := credentials.Secret(cfg.Auth.BearerTokenFile, "loki.auth.bearer_token_file")
		if err != nil {
			return nil, err
		}
		c.auth = "Bearer " + tok
	}
	rt := opts.Transport
	if rt == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Batch.MaxConcurrency
		tc, err := credentials.TLS(cfg.TLS, "loki.tls")
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
		rt = tr
	}
	c.hc = &http.Client{Transport: rt}
	var err error
	if c.m, err = newClientMetrics(opts.Registerer, c); err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// NewAppender returns an appender for one worker.
func (c *Client) NewAppender() *Appender {
	a := &Appender{c: c, ids: map[string]int32{}}
	c.mu.Lock()
	c.appenders = append(c.appenders, a)
	c.mu.Unlock()
	return a
}

// Start runs the senders and the timer that seals batches at max_wait.
func (c *Client) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return
	}
	c.started = true
	for range c.cfg.Batch.MaxConcurrency {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.send() }()
	}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.tick() }()
}

// Flush seals every open batch now (shutdown, partition revocation). It
// waits for each appender's current Kafka batch to be added.
func (c *Client) Flush() {
	now := time.Now()
	for _, a := range c.appendersNow() {
		a.flush(0, now)
	}
}

// InflightBytes are the line bytes added and not yet done with.
func (c *Client) InflightBytes() int64 { return c.inflight.Load() }

// Close stops pushing. Batches not acknowledged by now are abandoned
// without releasing their sources: their offsets are not committed, and
// they are read again after a restart or by the partition's next owner.
func (c *Client) Close() {
	c.cancel()
	c.wg.Wait()
}

func (c *Client) appendersNow() []*Appender {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Appender(nil), c.appenders...)
}

func (c *Client) newBatch() *batch {
	select {
	case b := <-c.free:
		b.created = time.Now()
		return b
	default:
	}
	// The buffer holds the lines as Entry fields of the push body: the
	// fields' own bytes are about 7 % of a line of 300 bytes, 30 % with
	// structured metadata.
	n := c.maxBytes + c.maxBytes/4
	if c.meta {
		n += c.maxBytes / 4
	}
	return &batch{buf: make([]byte, 0, n), created: time.Now()}
}

func (c *Client) recycle(b *batch) {
	if cap(b.buf) > 4*c.maxBytes {
		return // grown by an over-long line: let it go
	}
	b.buf, b.entries, b.topics, b.acks, b.lastAck, b.lineBytes = b.buf[:0], b.entries[:0], b.topics[:0], b.acks[:0], nil, 0
	select {
	case c.free <- b:
	default:
	}
}

func (c *Client) enqueue(b *batch) {
	c.outstanding.Add(1)
	c.mu.Lock()
	c.queue = append(c.queue, b)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Client) dequeue() *batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return nil
	}
	b := c.queue[0]
	c.queue[0] = nil
	c.queue = c.queue[1:]
	if len(c.queue) > 0 {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return b
}

func (c *Client) tick() {
	wait := c.cfg.Batch.MaxWait
	t := time.NewTicker(max(wait/4, 5*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			for _, a := range c.appendersNow() {
				a.flush(wait, now)
			}
		}
	}
}

func (c *Client) send() {
	s := &sender{c: c}
	for {
		b := c.dequeue()
		if b == nil {
			select {
			case <-c.ctx.Done():
				return
			case <-c.wake:
				continue
			}
		}
		if s.deliver(b) {
			b.release()
			c.inflight.Add(-b.lineBytes)
			c.outstanding.Add(-1)
			c.recycle(b)
		} else {
			return // closed: abandoned, sources not released
		}
	}
}

// sender is one push worker's scratch state, reused from push to push.
type sender struct {
	c      *Client
	pos    []int32  // stream id -> position in the push, -1 when absent
	ids    []int32  // position -> stream id
	counts []int    // position -> entries, then where its entries start in order
	sizes  []int    // position -> size of the Stream message
	labels []string // position -> label set
	runs   []run    // entries back to back of one stream
	order  []int    // run indexes grouped by position
	raw    []byte   // the protobuf body
	body   []byte   // raw, snappy-compressed
	idxBuf []int
}

// deliver pushes b until every entry is acknowledged, rejected or dropped;
// false when the client closed first.
func (s *sender) deliver(b *batch) bool {
	return s.pushRange(b, s.deliverIdx(b), time.Now())
}

// deliverIdx sets s.idxBuf to every entry of b.
func (s *sender) deliverIdx(b *batch) []int {
	idx := s.idxBuf[:0]
	for i := range b.entries {
		idx = append(idx, i)
	}
	s.idxBuf = idx
	return idx
}

type outcome int

const (
	acked outcome = iota
	retry
	reject
)

// pushRange pushes the entries idx of b, retrying transient failures and
// splitting on a 4xx. first is when the entries were first pushed (drop by age).
func (s *sender) pushRange(b *batch, idx []int, first time.Time) bool {
	c := s.c
	s.encode(b, idx)
	span := c.startPush(b, len(idx))
	defer span.End()
	bo := backoff{min: c.cfg.Retry.MinBackoff, max: c.cfg.Retry.MaxBackoff}
	for attempt := 0; ; attempt++ {
		ans := s.post()
		switch ans.outcome {
		case acked:
			span.SetAttributes(attribute.Int("attempts", attempt+1))
			var n int64
			for _, i := range idx {
				n += int64(b.entries[i].n)
			}
			c.m.sentEntries.Add(float64(len(idx)))
			c.m.sentBytes.Add(float64(n))
			c.m.batchOK.Inc()
			return true
		case reject:
			if len(idx) == 1 {
				c.m.batchRejected.Inc()
				r := rejectReason(ans.status, ans.body)
				span.AddEvent("rejected", trace.WithAttributes(attribute.String("reason", r), attribute.Int("http.response.status_code", ans.status)))
				c.m.rejected(r).Inc()
				c.sample(r, ans.status, ans.body, b, &b.entries[idx[0]])
				return true
			}
			c.m.batchSplit.Inc()
			span.AddEvent("split", trace.WithAttributes(attribute.Int("http.response.status_code", ans.status)))
			// Copy the halves: idx is s.idxBuf, which encode does not touch,
			// but the recursion must own its slices.
			mid := len(idx) / 2
			lo := append([]int(nil), idx[:mid]...)
			hi := append([]int(nil), idx[mid:]...)
			return s.pushRange(b, lo, first) && s.pushRange(b, hi, first)
		}
		if c.ctx.Err() != nil {
			return false
		}
		c.m.retries(ans.reason).Inc()
		c.m.batchRetried.Inc()
		if d := c.cfg.Drop; d.Enabled {
			switch {
			case d.MaxAge > 0 && time.Since(first) >= d.MaxAge:
				c.dropped(b, idx, "max_age")
				return true
			case d.MaxBytes > 0 && c.inflight.Load() > int64(d.MaxBytes):
				c.dropped(b, idx, "max_bytes")
				return true
			}
		}
		if c.cfg.Retry.MaxRetries > 0 && attempt+1 > c.cfg.Retry.MaxRetries {
			c.dropped(b, idx, "max_retries")
			return true
		}
		d := bo.next()
		if ans.wait > 0 {
			d = min(ans.wait, 10*time.Minute)
		}
		span.AddEvent("retry", trace.WithAttributes(attribute.String("reason", ans.reason),
			attribute.Int("http.response.status_code", ans.status), attribute.Int("attempt", attempt+1), attribute.String("wait", d.String())))
		if attempt == 0 || attempt%10 == 0 {
			args := []any{"reason", ans.reason, "status", ans.status, "entries", len(idx), "wait", d, "attempt", attempt + 1, "body", string(ans.body)}
			if sc := span.SpanContext(); sc.IsValid() {
				// The trace of this push: its retries and the Kafka batches
				// it carries.
				args = append(args, "trace_id", sc.TraceID().String())
			}
			c.log.Warn("loki push failed; retrying", args...)
		}
		t := time.NewTimer(d)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

func (c *Client) dropped(b *batch, idx []int, reason string) {
	c.m.batchDropped.Inc()
	c.m.dropped(reason).Add(float64(len(idx)))
	c.log.Warn("loki: dropping lines Loki did not accept in time (loki.drop / loki.retry.max_retries)", "reason", reason, "entries", len(idx))
}

// answer is what one push request came to.
type answer struct {
	outcome outcome
	reason  string        // why it is retried: network, timeout, 429, 5xx, 4xx
	wait    time.Duration // the store's Retry-After; 0 when none
	body    []byte        // the store's answer (its first 4 KiB), or the error
	status  int           // the HTTP status; 0 when no answer came
}

// post sends the encoded body once.
func (s *sender) post() (ans answer) {
	c := s.c
	// The store answered (acknowledged or refused the lines): the sender
	// works. No answer, or "later": it does not.
	began := time.Now()
	defer func() {
		if ans.outcome == retry {
			c.status.Report(time.Since(began), errPushRetried)
		} else {
			c.status.Report(time.Since(began), nil)
		}
	}()
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(s.body))
	if err != nil {
		return answer{outcome: retry, reason: "network", body: []byte(err.Error())}
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", c.ua)
	if c.cfg.Tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.cfg.Tenant)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.m.duration.Observe(time.Since(start).Seconds())
		reason := "network"
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			reason = "timeout"
		}
		return answer{outcome: retry, reason: reason, body: []byte(err.Error())}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	c.m.duration.Observe(time.Since(start).Seconds())
	status := resp.StatusCode
	switch {
	case status/100 == 2:
		return answer{outcome: acked, status: status}
	case status == http.StatusTooManyRequests:
		return answer{retry, "429", retryAfter(resp.Header.Get("Retry-After")), body, status}
	case status/100 == 5:
		return answer{retry, "5xx", retryAfter(resp.Header.Get("Retry-After")), body, status}
	case status == http.StatusRequestTimeout:
		return answer{retry, "timeout", 0, body, status}
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge || status == http.StatusUnprocessableEntity:
		// The content's fault (line too long, too old, bad labels): split.
		return answer{reject, "", 0, body, status}
	case status/100 == 4:
		// 401, 403, 404...: the setup's fault, not the lines'. Rejecting
		// would throw every line away; waiting keeps them in Kafka.
		return answer{retry, "4xx", retryAfter(resp.Header.Get("Retry-After")), body, status}
	}
	// 1xx/3xx: not an answer to a push; try again.
	return answer{retry, "5xx", 0, body, status}
}

// retryAfter reads seconds or an HTTP date; 0 when absent or unreadable.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// rejectReason names what Loki (or a Loki-compatible store) said about a
// single entry it refused; the set is fixed so the label stays bounded.
func rejectReason(status int, body []byte) string {
	b := strings.ToLower(string(body))
	switch {
	case status == http.StatusRequestEntityTooLarge:
		return "too_large"
	case strings.Contains(b, "line too long") || strings.Contains(b, "max entry size") || strings.Contains(b, "line_too_long"):
		return "line_too_long"
	case strings.Contains(b, "too far behind"):
		return "too_far_behind"
	case strings.Contains(b, "too old") || strings.Contains(b, "greater_than_max_sample_age"):
		return "too_old"
	case strings.Contains(b, "too new") || strings.Contains(b, "too_far_in_future") || strings.Contains(b, "in the future"):
		return "too_new"
	case strings.Contains(b, "structured metadata"):
		return "structured_metadata"
	case strings.Contains(b, "label"):
		return "invalid_labels"
	}
	return "other"
}

// sample logs one rejected line per reason per minute.
func (c *Client) sample(reason string, status int, body []byte, b *batch, e *entry) {
	c.sampleMu.Lock()
	now := time.Now()
	if now.Sub(c.lastSample[reason]) < time.Minute {
		c.sampleMu.Unlock()
		return
	}
	c.lastSample[reason] = now
	c.sampleMu.Unlock()
	line := b.line(e)
	if len(line) > 256 {
		line = line[:256] + "..."
	}
	c.log.Warn("loki rejected a line; counted and skipped (one sample per reason per minute)",
		"reason", reason, "status", status, "response", strings.TrimSpace(string(body)),
		"partition", e.partition, "offset", e.offset, "line_bytes", e.n, "line", line)
}

// startPush starts the span of one push, linked to the traced Kafka batches
// whose lines it carries; a no-op span when tracing is off.
func (c *Client) startPush(b *batch, entries int) trace.Span {
	if c.tracer == nil {
		return noopSpan
	}
	var links []trace.Link
	for _, a := range b.acks {
		if t, ok := a.(interface{ SpanContext() trace.SpanContext }); ok {
			if sc := t.SpanContext(); sc.IsValid() {
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
	}
	_, span := c.tracer.Start(context.Background(), "loki.push", trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("entries", entries), attribute.Int("kafka.batches", len(b.acks))))
	return span
}

var noopSpan = noop.Span{}

// backoff doubles from min to max; each wait is drawn from [d/2, d), so
// replicas that failed together do not retry together, even at the cap.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	if half <= 0 {
		return b.cur
	}
	return half + rand.N(half)
}
