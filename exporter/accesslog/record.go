package accesslog

import "time"

// Record is one access-log line, decoded and parsed. Byte slices alias the
// input or the decoder's scratch buffers: they are valid until the next call
// that fills the same Record, so a caller that keeps a value copies it.
//
// Numeric fields use -1 for "not logged or logged as -", so that a zero
// duration or an empty body stays distinguishable from a missing one.
type Record struct {
	// Line is the access-log line itself: the Filebeat envelope's message, or
	// the whole record for a raw line. It is what gets forwarded to Loki.
	Line []byte

	// From the Filebeat envelope; empty/zero for raw lines.
	Host      []byte    // host.name, or beat.hostname (6.x/7.x)
	File      []byte    // log.file.path, or source (6.x)
	Timestamp time.Time // @timestamp
	Enveloped bool      // the record was a Filebeat JSON envelope
	// MessageAt is where the envelope's message string starts in the record
	// value (the byte after its opening quote), -1 for a raw line:
	// EnvelopeLine gives Line again from it.
	MessageAt int

	// Format is the format chosen for this line (by rule or default).
	Format *Format

	Time     time.Time // the line's own time ($time_local, $time_iso8601, $msec); zero when not logged
	VHost    []byte    // $host, else $server_name, else $http_host (port stripped); empty when none logged
	Method   []byte    // empty when the request is "-", empty, or not an HTTP request line (e.g. TLS bytes)
	Path     []byte    // request path, query removed
	Query    []byte    // query string without '?'
	Protocol []byte    // e.g. HTTP/1.1
	Status   int       // $status; 0 when not logged

	BodyBytes int64 // $body_bytes_sent; -1 when absent
	BytesSent int64 // $bytes_sent; -1 when absent

	RequestTime          float64 // $request_time in seconds; -1 when absent
	UpstreamResponseTime float64 // sum over all values of $upstream_response_time; -1 when absent or all "-"
	UpstreamConnectTime  float64 // likewise
	UpstreamHeaderTime   float64 // likewise
	UpstreamStatus       int     // last value of $upstream_status; 0 when absent
	UpstreamAddr         []byte  // last value of $upstream_addr
	UpstreamTries        int     // number of upstream attempts logged (values in $upstream_addr/_status)

	RemoteAddr []byte // $remote_addr
	RequestID  []byte // $request_id
	TraceID    []byte // $otel_trace_id, or the trace id of a logged traceparent

	// vars holds the raw (still escaped) value of every variable the format
	// logs, indexed by the format's variable slot (Format.Index); the
	// values of the slots below nspans are where spans says in Line
	// instead (see val).
	vars [][]byte
	// A straight-line reader (parseCombined and its tails) stores where
	// each value lies: two offsets cost a few instructions where a slice
	// costs about twenty (its bounds checks, its capacity, the write
	// barrier's check).
	spans  [timedOps]span
	nspans int

	// Buffers reused from line to line so that steady state allocates
	// nothing: decoded fields, the envelope's message, envelope strings.
	scratch []byte
	lineBuf []byte
	envBuf  []byte
	path    []byte // dotted key path while walking nested JSON

	err   ParseError
	dates dateCache
}

// reset clears the Record for a new line, keeping its buffers. The error
// is not cleared: it is only read through the pointer a failure returns.
func (r *Record) reset() {
	r.Line, r.Host, r.File = nil, nil, nil
	r.Timestamp, r.Time = time.Time{}, time.Time{}
	r.Enveloped, r.MessageAt = false, -1
	r.nspans = 0
	r.Format = nil
	r.VHost, r.Method, r.Path, r.Query, r.Protocol = nil, nil, nil, nil, nil
	r.Status, r.UpstreamStatus, r.UpstreamTries = 0, 0, 0
	r.BodyBytes, r.BytesSent = -1, -1
	r.RequestTime, r.UpstreamResponseTime, r.UpstreamConnectTime, r.UpstreamHeaderTime = -1, -1, -1, -1
	r.UpstreamAddr, r.RemoteAddr, r.RequestID, r.TraceID = nil, nil, nil, nil
	r.scratch, r.lineBuf, r.envBuf, r.path = r.scratch[:0], r.lineBuf[:0], r.envBuf[:0], r.path[:0]
}

// setFormat sizes the slot tables for f, every value not logged.
func (r *Record) setFormat(f *Format) {
	r.sizeFor(f)
	clear(r.vars)
}

// sizeFor sizes the slot tables for f, leaving the last line's values in
// them: a text format's parse writes every slot.
func (r *Record) sizeFor(f *Format) {
	r.Format = f
	r.nspans = 0
	n := len(f.vars)
	if cap(r.vars) < n {
		r.vars = make([][]byte, n)
	}
	r.vars = r.vars[:n]
}

// offset is where the value in slot i starts in Line, for errors. Every
// value is a slice of Line, which ends where Line's array ends: the
// difference of their capacities is the offset, and the parse need not
// store it.
func (r *Record) offset(i int) int { return cap(r.Line) - cap(r.val(i)) }

// span is where a value lies in Line: Line[start:end].
type span struct{ start, end int }

// val is the raw value of slot i, which is in range.
func (r *Record) val(i int) []byte {
	if i < r.nspans {
		s := r.spans[i]
		return r.Line[s.start:s.end]
	}
	return r.vars[i]
}
