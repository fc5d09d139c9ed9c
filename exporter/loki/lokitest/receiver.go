package lokitest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// PushPath is where the Receiver takes pushes, as Loki does.
const PushPath = "/loki/api/v1/push"

// Limits are the checks the Receiver applies to every entry, named after
// Loki's limits_config. A zero field turns its check off.
type Limits struct {
	MaxLineSize      int           // max_line_size: 400 line_too_long
	MaxStreams       int           // max_global_streams_per_user: 429 stream_limit
	CreationGrace    time.Duration // creation_grace_period: 400 too_far_in_future
	RejectOldMaxAge  time.Duration // reject_old_samples_max_age: 400 greater_than_max_sample_age
	OutOfOrderWindow time.Duration // max_chunk_age/2 behind a stream's newest entry: 400 too_far_behind
	MaxBodyBytes     int           // distributor max_recv_msg_size: 413
}

// LokiDefaults are Loki's own default limits (max_line_size 256KB is
// 256,000 bytes: Loki reads sizes with SI units).
func LokiDefaults() Limits {
	return Limits{
		MaxLineSize:      256000,
		MaxStreams:       5000,
		CreationGrace:    10 * time.Minute,
		RejectOldMaxAge:  7 * 24 * time.Hour,
		OutOfOrderWindow: time.Hour,
		MaxBodyBytes:     100 << 20,
	}
}

// Option configures a Receiver.
type Option func(*Receiver)

// WithLimits replaces LokiDefaults. Tests that push fixed old timestamps
// turn RejectOldMaxAge off.
func WithLimits(l Limits) Option { return func(r *Receiver) { r.limits = l } }

// Fault is what the Receiver does to the requests that follow SetFault.
// Build one with Refuse, Delay, CutBody, LoseAnswer or Status.
type Fault struct {
	kind       faultKind
	status     int
	retryAfter string
	delay      time.Duration
	times      int // 0: until SetFault again
}

type faultKind int

const (
	faultNone faultKind = iota
	faultRefuse
	faultDelay
	faultCutBody
	faultLoseAnswer
	faultStatus
)

// NoFault answers as Loki does.
var NoFault = Fault{}

// Refuse closes the listening socket and every open connection: new
// connections are refused (ECONNREFUSED), as with a Loki that is down.
// Clearing the fault listens again on the same address.
func Refuse() Fault { return Fault{kind: faultRefuse} }

// Delay reads the push, then waits d before handling it. A client that gives
// up first (its timeout) finds nothing stored, as when Loki's own request
// context ends; a client that waits gets the normal answer.
func Delay(d time.Duration) Fault { return Fault{kind: faultDelay, delay: d} }

// CutBody reads half of the request body, then resets the connection:
// nothing is stored and no answer is sent.
func CutBody() Fault { return Fault{kind: faultCutBody} }

// LoseAnswer stores the push, then resets the connection instead of
// answering: the entries are in the store, but the client cannot know.
func LoseAnswer() Fault { return Fault{kind: faultLoseAnswer} }

// Status reads the push and answers code without storing anything, with
// the body Loki sends for it (429: the rate-limit text).
func Status(code int) Fault { return Fault{kind: faultStatus, status: code} }

// RetryAfter adds a Retry-After header (seconds or an HTTP date) to a
// Status fault.
func (f Fault) RetryAfter(v string) Fault { f.retryAfter = v; return f }

// Times limits the fault to the next n requests; afterwards the Receiver
// answers normally again. Not for Refuse.
func (f Fault) Times(n int) Fault { f.times = n; return f }

// Entry is one stored log entry.
type Entry struct {
	Labels   string // the stream's label set as pushed, {a="b", ...}
	Time     time.Time
	Line     string
	Metadata push.LabelsAdapter // structured metadata
}

// Request is what the Receiver saw of one push and how it answered.
type Request struct {
	At          time.Time
	Header      http.Header
	ContentType string
	Status      int       // 0 when no answer was sent (a fault cut it)
	Answered    time.Time // when the answer was written; zero without one
	Body        string    // the answer's body
	Entries     int       // entries decoded from the push
	Stored      int       // entries stored
}

// Receiver is an in-process Loki push endpoint for tests: it decodes
// protobuf+snappy and JSON pushes with Loki's wire types, validates every
// entry against Limits, stores the valid ones and answers as Loki documents
// it: 204; 400 with Loki's reason text for entries it refused (the valid
// entries of the same push are stored, as Loki stores them); 413 for a body
// over MaxBodyBytes; 429 for a new stream over MaxStreams. Entries pushed
// twice are kept twice (as VictoriaLogs keeps them): Duplicates counts them.
type Receiver struct {
	t       testing.TB
	limits  Limits
	srv     *http.Server
	handler http.Handler
	addr    string

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	fault    Fault
	entries  []Entry
	newest   map[string]time.Time // per stream: newest stored timestamp
	seen     map[entryKey]int     // how often each entry was stored
	requests []Request
}

type entryKey struct {
	labels string
	ts     int64
	line   string
}

// NewReceiver listens on 127.0.0.1 and serves until the test ends.
func NewReceiver(t testing.TB, opts ...Option) *Receiver {
	t.Helper()
	r := &Receiver{t: t, limits: LokiDefaults(), conns: map[net.Conn]struct{}{},
		newest: map[string]time.Time{}, seen: map[entryKey]int{}}
	for _, o := range opts {
		o(r)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.ln, r.addr = ln, ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc(PushPath, r.push)
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ready\n") })
	r.handler = mux
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ConnState: r.track}
	go r.serve(ln)
	t.Cleanup(r.Close)
	return r
}

func (r *Receiver) serve(ln net.Listener) { _ = r.srv.Serve(ln) }

func (r *Receiver) track(c net.Conn, s http.ConnState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch s {
	case http.StateNew:
		r.conns[c] = struct{}{}
	case http.StateHijacked, http.StateClosed:
		delete(r.conns, c)
	}
}

// URL is the base URL, http://127.0.0.1:PORT; pushes go to URL()+PushPath.
func (r *Receiver) URL() string { return "http://" + r.addr }

// Handler serves the Receiver's endpoints, for a test that needs its own
// server in front (TLS): what it receives is stored here too. Refuse acts
// on the Receiver's own listener only.
func (r *Receiver) Handler() http.Handler { return r.handler }

// PushURL is URL()+PushPath.
func (r *Receiver) PushURL() string { return r.URL() + PushPath }

// Close stops the Receiver; the test's cleanup calls it.
func (r *Receiver) Close() { _ = r.srv.Close() }

// SetFault changes how the Receiver treats the requests that follow.
func (r *Receiver) SetFault(f Fault) {
	r.mu.Lock()
	was := r.fault.kind
	r.fault = f
	var closeLn net.Listener
	var conns []net.Conn
	if f.kind == faultRefuse && was != faultRefuse {
		closeLn, r.ln = r.ln, nil
		for c := range r.conns {
			conns = append(conns, c)
		}
	}
	relisten := f.kind != faultRefuse && was == faultRefuse
	r.mu.Unlock()
	if closeLn != nil {
		_ = closeLn.Close()
		for _, c := range conns {
			reset(c)
		}
	}
	if relisten {
		r.relisten()
	}
}

// relisten takes the old address back; another process may hold it for a
// moment (a connection in TIME_WAIT does not stop a listener).
func (r *Receiver) relisten() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", r.addr)
		if err == nil {
			r.mu.Lock()
			r.ln = ln
			r.mu.Unlock()
			go r.serve(ln)
			return
		}
		if time.Now().After(deadline) {
			r.t.Errorf("lokitest: listening again on %s: %v", r.addr, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// takeFault returns the fault for one request, counting down Times.
func (r *Receiver) takeFault() Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.fault
	if f.times > 0 {
		r.fault.times--
		if r.fault.times == 0 {
			r.fault = NoFault
		}
	}
	return f
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// hangUp resets the connection of w without an answer.
func hangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("lokitest: the response writer cannot be hijacked")
	}
	c, _, err := hj.Hijack()
	if err == nil {
		reset(c)
	}
}

func (r *Receiver) record(req Request) {
	r.mu.Lock()
	r.requests = append(r.requests, req)
	r.mu.Unlock()
}

func (r *Receiver) push(w http.ResponseWriter, hr *http.Request) {
	req := Request{At: time.Now(), Header: hr.Header.Clone(), ContentType: hr.Header.Get("Content-Type")}
	f := r.takeFault()
	if f.kind == faultRefuse { // a request on a connection accepted just before
		r.record(req)
		hangUp(w)
		return
	}
	if hr.Method != http.MethodPost {
		r.answer(w, &req, http.StatusMethodNotAllowed, "", "")
		return
	}
	if f.kind == faultCutBody {
		n := hr.ContentLength / 2
		if n <= 0 {
			n = 1
		}
		_, _ = io.CopyN(io.Discard, hr.Body, n)
		r.record(req)
		hangUp(w)
		return
	}
	var body []byte
	var err error
	if max := r.limits.MaxBodyBytes; max > 0 {
		body, err = io.ReadAll(io.LimitReader(hr.Body, int64(max)+1))
		if err == nil && len(body) > max {
			r.answer(w, &req, http.StatusRequestEntityTooLarge, "", (&tooLarge{len(body), max}).Error())
			return
		}
	} else {
		body, err = io.ReadAll(hr.Body)
	}
	if err != nil {
		// The client went away mid-body: nothing to answer.
		r.record(req)
		return
	}
	if f.kind == faultDelay {
		t := time.NewTimer(f.delay)
		select {
		case <-t.C:
		case <-hr.Context().Done():
			t.Stop()
			r.record(req)
			return
		}
	}
	streams, err := decode(hr.Header.Get("Content-Type"), hr.Header.Get("Content-Encoding"), body, r.limits.MaxBodyBytes)
	var tl *tooLarge
	switch {
	case errors.As(err, &tl):
		r.answer(w, &req, http.StatusRequestEntityTooLarge, "", err.Error())
		return
	case err != nil:
		r.answer(w, &req, http.StatusBadRequest, "", err.Error())
		return
	}
	for _, s := range streams {
		req.Entries += len(s.Entries)
	}
	if f.kind == faultStatus {
		msg := http.StatusText(f.status)
		if f.status == http.StatusTooManyRequests {
			msg = fmt.Sprintf("ingestion rate limit exceeded for user fake (limit: %d bytes/sec) while attempting to ingest %d lines totaling %d bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased",
				4<<20, req.Entries, len(body))
		}
		r.answer(w, &req, f.status, f.retryAfter, msg)
		return
	}
	status, msg := r.store(streams, &req)
	if f.kind == faultLoseAnswer {
		r.record(req)
		hangUp(w)
		return
	}
	r.answer(w, &req, status, "", msg)
}

func (r *Receiver) answer(w http.ResponseWriter, req *Request, status int, retryAfter, msg string) {
	req.Status, req.Body, req.Answered = status, msg, time.Now()
	r.record(*req)
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	http.Error(w, msg, status)
}

// store validates and keeps the entries of one push; it returns the answer.
func (r *Receiver) store(streams []push.Stream, req *Request) (int, string) {
	now := time.Now()
	var invalid []string
	var limited string
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range streams {
		if _, err := ParseLabels(s.Labels); err != nil {
			invalid = append(invalid, fmt.Sprintf("error parsing labels %s with error: %v", s.Labels, err))
			continue
		}
		newest, known := r.newest[s.Labels]
		if !known && r.limits.MaxStreams > 0 && len(r.newest) >= r.limits.MaxStreams {
			limited = fmt.Sprintf("maximum active stream limit exceeded when trying to create stream %s, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: fake", s.Labels)
			continue
		}
		for _, e := range s.Entries {
			if msg := r.validate(s.Labels, &e, newest, known, now); msg != "" {
				invalid = append(invalid, msg)
				continue
			}
			if !known || e.Timestamp.After(newest) {
				newest, known = e.Timestamp, true
				r.newest[s.Labels] = newest
			}
			r.entries = append(r.entries, Entry{Labels: s.Labels, Time: e.Timestamp, Line: e.Line, Metadata: e.StructuredMetadata})
			r.seen[entryKey{s.Labels, e.Timestamp.UnixNano(), e.Line}]++
			req.Stored++
		}
	}
	switch {
	case limited != "":
		return http.StatusTooManyRequests, limited
	case len(invalid) > 0:
		return http.StatusBadRequest, strings.Join(invalid, "\n")
	}
	return http.StatusNoContent, ""
}

// validate returns Loki's reason text when e is refused.
func (r *Receiver) validate(labels string, e *push.Entry, newest time.Time, known bool, now time.Time) string {
	l := r.limits
	const tf = time.RFC3339
	switch {
	case l.MaxLineSize > 0 && len(e.Line) > l.MaxLineSize:
		return fmt.Sprintf("max entry size %d bytes exceeded for stream %s while adding an entry with length %d bytes", l.MaxLineSize, labels, len(e.Line))
	case l.RejectOldMaxAge > 0 && e.Timestamp.Before(now.Add(-l.RejectOldMaxAge)):
		return fmt.Sprintf("entry for stream %s has timestamp too old: %s, oldest acceptable timestamp is: %s", labels, e.Timestamp.Format(tf), now.Add(-l.RejectOldMaxAge).Format(tf))
	case l.CreationGrace > 0 && e.Timestamp.After(now.Add(l.CreationGrace)):
		return fmt.Sprintf("entry for stream %s has timestamp too new: %s", labels, e.Timestamp.Format(tf))
	case l.OutOfOrderWindow > 0 && known && e.Timestamp.Before(newest.Add(-l.OutOfOrderWindow)):
		return fmt.Sprintf("entry too far behind, entry timestamp is: %s, oldest acceptable timestamp is: %s", e.Timestamp.Format(tf), newest.Add(-l.OutOfOrderWindow).Format(tf))
	}
	return ""
}

// tooLarge is a body over MaxBodyBytes, compressed or not: Loki checks both.
type tooLarge struct{ size, max int }

func (e *tooLarge) Error() string {
	return fmt.Sprintf("received message larger than max (%d vs %d)", e.size, e.max)
}

// decode reads a push body: protobuf (snappy block) or JSON (optionally
// gzip), as Loki's push handler does.
func decode(contentType, encoding string, body []byte, max int) ([]push.Stream, error) {
	mt, _, _ := strings.Cut(contentType, ";")
	switch strings.TrimSpace(mt) {
	case "application/x-protobuf", "":
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			return nil, fmt.Errorf("decompressing push: %w", err)
		}
		if max > 0 && len(raw) > max {
			return nil, &tooLarge{len(raw), max}
		}
		var req push.PushRequest
		if err := req.Unmarshal(raw); err != nil {
			return nil, fmt.Errorf("decoding push: %w", err)
		}
		return req.Streams, nil
	case "application/json":
		if encoding == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			if body, err = io.ReadAll(zr); err != nil {
				return nil, err
			}
			if max > 0 && len(body) > max {
				return nil, &tooLarge{len(body), max}
			}
		}
		return decodeJSON(body)
	}
	return nil, fmt.Errorf("unsupported Content-Type %q", contentType)
}

// decodeJSON reads Loki's JSON push:
// {"streams":[{"stream":{"a":"b"},"values":[["<ns>","line",{"k":"v"}]]}]}.
func decodeJSON(body []byte) ([]push.Stream, error) {
	var in struct {
		Streams []struct {
			Stream map[string]string   `json:"stream"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("decoding JSON push: %w", err)
	}
	out := make([]push.Stream, 0, len(in.Streams))
	for _, s := range in.Streams {
		ps := push.Stream{Labels: FormatLabels(s.Stream)}
		for _, v := range s.Values {
			if len(v) < 2 || len(v) > 3 {
				return nil, fmt.Errorf("decoding JSON push: a value has %d elements, want 2 or 3", len(v))
			}
			var ts, line string
			if err := json.Unmarshal(v[0], &ts); err != nil {
				return nil, fmt.Errorf("decoding JSON push: timestamp: %w", err)
			}
			ns, err := strconv.ParseInt(ts, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("decoding JSON push: timestamp %q: %w", ts, err)
			}
			if err := json.Unmarshal(v[1], &line); err != nil {
				return nil, fmt.Errorf("decoding JSON push: line: %w", err)
			}
			e := push.Entry{Timestamp: time.Unix(0, ns), Line: line}
			if len(v) == 3 {
				if err := json.Unmarshal(v[2], &e.StructuredMetadata); err != nil {
					return nil, fmt.Errorf("decoding JSON push: structured metadata: %w", err)
				}
				slices.SortFunc(e.StructuredMetadata, func(a, b push.LabelAdapter) int { return strings.Compare(a.Name, b.Name) })
			}
			ps.Entries = append(ps.Entries, e)
		}
		out = append(out, ps)
	}
	return out, nil
}

// FormatLabels writes a label set as Loki's {a="b", c="d"}, names sorted.
func FormatLabels(m map[string]string) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[n]))
	}
	b.WriteByte('}')
	return b.String()
}

// ParseLabels reads a {a="b", ...} label set, as Loki requires it: at
// least one pair, names [a-zA-Z_][a-zA-Z0-9_]*, values quoted.
func ParseLabels(s string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "{")
	if !ok || !strings.HasSuffix(rest, "}") {
		return nil, errors.New("not enclosed in {}")
	}
	rest = strings.TrimSpace(strings.TrimSuffix(rest, "}"))
	out := map[string]string{}
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		name = strings.TrimSpace(name)
		if !ok || !validName(name) {
			return nil, fmt.Errorf("bad label name %q", name)
		}
		after = strings.TrimSpace(after)
		q, err := strconv.QuotedPrefix(after)
		if err != nil {
			return nil, fmt.Errorf("label %s: unquoted value", name)
		}
		v, _ := strconv.Unquote(q)
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("duplicate label name %s", name)
		}
		out[name] = v
		rest = strings.TrimSpace(after[len(q):])
		if rest != "" {
			var comma bool
			if rest, comma = strings.CutPrefix(rest, ","); !comma {
				return nil, fmt.Errorf("expected , after label %s", name)
			}
			rest = strings.TrimSpace(rest)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("at least one label pair is required per stream")
	}
	return out, nil
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	for i, c := range n {
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// Entries are the stored entries in the order they arrived, duplicates
// included.
func (r *Receiver) Entries() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.entries)
}

// Len is the number of stored entries, duplicates included.
func (r *Receiver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// Streams groups the stored entries by label set, each stream's entries in
// arrival order, streams sorted by label set.
func (r *Receiver) Streams() []Stream {
	entries := r.Entries()
	by := map[string]*Stream{}
	var order []string
	for _, e := range entries {
		s := by[e.Labels]
		if s == nil {
			m, _ := ParseLabels(e.Labels)
			s = &Stream{Labels: m, Key: e.Labels}
			by[e.Labels] = s
			order = append(order, e.Labels)
		}
		s.Entries = append(s.Entries, e)
	}
	sort.Strings(order)
	out := make([]Stream, 0, len(order))
	for _, k := range order {
		out = append(out, *by[k])
	}
	return out
}

// Stream returns the entries of one label set, as pushed ({a="b", ...}).
func (r *Receiver) Stream(labels string) []Entry {
	var out []Entry
	for _, e := range r.Entries() {
		if e.Labels == labels {
			out = append(out, e)
		}
	}
	return out
}

// DistinctLines is the number of different line texts stored.
func (r *Receiver) DistinctLines() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := make(map[string]struct{}, len(r.entries))
	for _, e := range r.entries {
		lines[e.Line] = struct{}{}
	}
	return len(lines)
}

// Duplicates is the number of entries stored more than once with the same
// stream, timestamp and line, beyond the first: what a re-sent push left
// behind in a store that does not fold them.
func (r *Receiver) Duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.seen {
		n += c - 1
	}
	return n
}

// Missing returns the lines that are not stored.
func (r *Receiver) Missing(lines [][]byte) [][]byte {
	r.mu.Lock()
	have := make(map[string]struct{}, len(r.entries))
	for _, e := range r.entries {
		have[e.Line] = struct{}{}
	}
	r.mu.Unlock()
	var out [][]byte
	for _, l := range lines {
		if _, ok := have[string(l)]; !ok {
			out = append(out, l)
		}
	}
	return out
}

// Requests are the pushes received so far and how each was answered.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// RequestCount is len(Requests()) without the copy.
func (r *Receiver) RequestCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.requests)
}
