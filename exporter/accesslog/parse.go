package accesslog

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// Parse parses one bare access-log line (no Filebeat envelope) into r. A
// trailing "\n" or "\r\n" is ignored. On error r still holds Line and the
// values read so far, and the error is a *ParseError.
func (f *Format) Parse(line []byte, r *Record) error {
	r.reset()
	return f.parseLine(trimEOL(line), r)
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func (f *Format) parseLine(line []byte, r *Record) error {
	r.Line = line
	if len(line) == 0 || f.json {
		r.setFormat(f)
	} else {
		r.sizeFor(f)
	}
	if len(line) == 0 {
		return r.fail(ReasonEmptyLine, "", line, 0, "", nil)
	}
	var err error
	if f.json {
		err = f.parseJSON(line, r)
		if i := f.slotOf[kStatus]; err == nil && (i < 0 || r.val(i) == nil) {
			// Any JSON object walks cleanly; without a status it is not
			// an access line, and counting it would add a request with
			// every label unknown.
			return r.fail(ReasonMissingField, "status", line, 0, "a key holding it", nil)
		}
	} else if err = f.parseOps(&f.text, line, 0, r); err != nil {
		// The slots after the failure still hold the last line's values
		// (or a fast path's): the same parse over cleared slots, by the
		// op loop alone, stops at the same error.
		clear(r.vars)
		r.nspans = 0
		err = f.opLoop(&f.text, line, 0, r, 0, 0)
	}
	if err != nil {
		return err
	}
	return f.fill(r)
}

// hasAt reports whether in[pos:] starts with lit. Literals are a few bytes,
// where a plain loop beats a call to memequal.
func hasAt(in []byte, pos int, lit []byte) bool {
	if pos+len(lit) > len(in) {
		return false
	}
	in = in[pos : pos+len(lit)]
	for i, c := range lit {
		if in[i] != c {
			return false
		}
	}
	return true
}

// indexFrom finds the first lit in in[pos:]: the SIMD byte search for its
// first byte, then a check of the rest, which nearly always succeeds at once.
func indexFrom(in []byte, pos int, lit []byte) int {
	if len(lit) == 1 && pos <= len(in) {
		// The common delimiter, '"' or ' ': the byte search is the answer.
		if i := bytes.IndexByte(in[pos:], lit[0]); i >= 0 {
			return pos + i
		}
		return -1
	}
	for pos <= len(in) {
		i := bytes.IndexByte(in[pos:], lit[0])
		if i < 0 {
			return -1
		}
		pos += i
		if hasAt(in, pos+1, lit[1:]) {
			return pos
		}
		pos++
	}
	return -1
}

// parseOps reads the values of t's variables from in, which starts at byte
// base of r.Line (a JSON value's text may be a small format of its own).
func (f *Format) parseOps(t *textOps, in []byte, base int, r *Record) error {
	if t.combined {
		// Only a top-level text format is marked combined: in is r.Line,
		// where the spans point.
		if p, ok := parseCombined(in, &r.spans); ok {
			switch {
			case t.timed && parseTimedTail(in, p, &r.spans):
				r.nspans = timedOps
				return nil
			case t.main && parseMainTail(in, p, &r.spans):
				r.nspans = mainOps
				return nil
			}
			r.nspans = combinedOps
			return f.opLoop(t, in, base, r, combinedOps, p)
		}
	}
	return f.opLoop(t, in, base, r, 0, 0)
}

// opLoop reads the values of t's ops from the first on, at pos in in.
func (f *Format) opLoop(t *textOps, in []byte, base int, r *Record, first, pos int) error {
	// Locals, not r.vars and t.ops: the calls in the loop would make the
	// compiler reload them every time.
	vars, ops := r.vars, t.ops
	for i := first; i < len(ops); i++ {
		o := &ops[i]
		if !o.found && !o.lit.at(in, pos) {
			return r.fail(ReasonLiteralMismatch, f.vars[o.slot], r.Line, base+pos, "literal", o.lit.b)
		}
		pos += len(o.lit.b)
		end := -1
		switch o.scan {
		case scanQuote:
			if j := bytes.IndexByte(in[pos:], '"'); j >= 0 {
				end = pos + j
			}
		case scanShort:
			end = indexShort(in, pos, o.delim)
		case scanDelim:
			end = indexFrom(in, pos, o.delim)
		case scanEnd:
			end = len(in)
		case scanSuffix:
			if e := len(in) - len(t.tail.b); e >= pos && t.tail.at(in, e) {
				end = e
			} else {
				end = indexFrom(in, pos, o.delim)
			}
		case scanQuoteJSON:
			end = jsonStringEnd(in, pos)
		case scanMulti:
			end = multiEnd(in, pos)
		case scanTimeLocal:
			if pos+26 <= len(in) && hasAt(in, pos+26, o.delim) {
				end = pos + 26
			} else {
				end = indexFrom(in, pos, o.delim)
			}
		case scanNumber:
			end = pos
			if f.kinds[o.slot] == kStatus && pos+3 <= len(in) {
				end = pos + 3 // $status is always 3 digits
				break
			}
			for end < len(in) && (in[end] >= '0' && in[end] <= '9' || in[end] == '.' || in[end] == '-') {
				end++
			}
		}
		if end < 0 {
			if o.delim[0] == '"' {
				return r.fail(ReasonUnterminatedQuote, f.vars[o.slot], r.Line, base+pos, "closing quote before end of line", nil)
			}
			return r.fail(ReasonLiteralMismatch, f.vars[o.slot], r.Line, base+pos, "value followed by literal", o.delim)
		}
		vars[o.slot] = in[pos:end]
		pos = end
	}
	if !t.tail.at(in, pos) {
		return r.fail(ReasonLiteralMismatch, f.vars[ops[len(ops)-1].slot], r.Line, base+pos, "literal", t.tail.b)
	}
	pos += len(t.tail.b)
	if pos != len(in) {
		return r.fail(ReasonTrailingData, "", r.Line, base+pos, "end of line", nil)
	}
	return nil
}

// combinedOps is the number of ops in nginx's combined format, which main
// and main_timed start with.
const combinedOps = 8

// parseCombined reads the values of the combined format's eight variables
// (slots 0-7) from the start of in, as the op loop would, in straight-line
// code: in the loop, each value costs a dispatch and reloading the loop's
// state after every call. It returns where the user agent's closing quote
// is. It takes only the shapes nginx writes; for anything else (a value
// holding a delimiter's first byte, a line cut short) it reports !ok and
// the op loop parses the line from its start, finding the same values or
// the error.
func parseCombined(in []byte, sp *[timedOps]span) (int, bool) {
	// Each span is stored as soon as it is found, while its bounds are
	// in registers.
	// $remote_addr " - " $remote_user " [": the first space of each
	// must be the literal's.
	a := spaceFrom(in, 0)
	if a+3 > len(in) || in[a+1] != '-' || in[a+2] != ' ' {
		return 0, false
	}
	sp[0] = span{0, a}
	u := spaceFrom(in, a+3)
	if u+2 > len(in) || in[u+1] != '[' {
		return 0, false
	}
	sp[1] = span{a + 3, u}
	// $time_local is 26 bytes, then `] "`.
	t := u + 2
	if t+29 > len(in) || in[t+26] != ']' || in[t+27] != ' ' || in[t+28] != '"' {
		return 0, false
	}
	sp[2] = span{t, t + 26}
	q := t + 29
	rq := bytes.IndexByte(in[q:], '"')
	if rq < 0 {
		return 0, false
	}
	rq += q
	sp[3] = span{q, rq}
	// `" ` $status " " $body_bytes_sent ` "`
	st := rq + 2
	if st > len(in) || in[rq+1] != ' ' {
		return 0, false
	}
	se := spaceFrom(in, st)
	sp[4] = span{st, se}
	bb := se + 1
	be := spaceFrom(in, bb)
	if be+2 > len(in) || in[be+1] != '"' {
		return 0, false
	}
	sp[5] = span{bb, be}
	ref := be + 2
	re := ref + 1 // "-"
	if !dashQuote(in, ref) {
		re = quoteAt(in, ref)
	}
	if re < 0 || re+3 > len(in) || in[re+1] != ' ' || in[re+2] != '"' {
		return 0, false
	}
	sp[6] = span{ref, re}
	ua := re + 3
	ue := quoteAt(in, ua)
	if ue < 0 {
		return 0, false
	}
	sp[7] = span{ua, ue}
	return ue, true
}

// mainOps is the number of ops in main.
const mainOps = 9

// parseMainTail reads main's last value, $http_x_forwarded_for (slot 8),
// from in[pos:], pos being the user agent's closing quote. It reports
// whether it read the whole line; when not, the op loop goes on from pos.
func parseMainTail(in []byte, pos int, sp *[timedOps]span) bool {
	// `" "` $http_x_forwarded_for `"`, the end of the line.
	x := pos + 3
	if x > len(in) || in[pos+1] != ' ' || in[pos+2] != '"' {
		return false
	}
	xe := x + 1 // "-"
	if !dashQuote(in, x) {
		xe = quoteAt(in, x)
	}
	if xe != len(in)-1 {
		return false
	}
	sp[8] = span{x, xe}
	return true
}

// timedOps is the number of ops in main_timed.
const timedOps = 17

// parseTimedTail reads the values main_timed logs after combined's (slots
// 8-16) from in[pos:], pos being the user agent's closing quote, in
// straight-line code as parseCombined does. It reports whether it read
// the whole line; when not, the op loop goes on from pos.
func parseTimedTail(in []byte, pos int, sp *[timedOps]span) bool {
	// `" "` $http_x_forwarded_for `" ` $host " " $request_time " "
	x := pos + 3
	if x > len(in) || in[pos+1] != ' ' || in[pos+2] != '"' {
		return false
	}
	xe := x + 1 // "-"
	if !dashQuote(in, x) {
		xe = quoteAt(in, x)
	}
	if xe < 0 || xe+2 > len(in) || in[xe+1] != ' ' {
		return false
	}
	h := xe + 2
	he := spaceFrom(in, h)
	rt := he + 1
	rte := spaceFrom(in, rt)
	sp[8] = span{x, xe}
	sp[9] = span{h, he}
	sp[10] = span{rt, rte}
	// The five upstream values, each followed by one space: most are one
	// value, whose end is the first space; multiEnd takes the others.
	p := rte
	for k := 11; k < 16; k++ {
		v := p + 1
		e := spaceFrom(in, v)
		if e >= len(in) {
			return false
		}
		if e > v && in[e-1] == ',' || e+2 < len(in) && in[e+1] == ':' && in[e+2] == ' ' {
			if e = multiEnd(in, v); e >= len(in) {
				return false
			}
		}
		sp[k] = span{v, e}
		p = e
	}
	sp[16] = span{p + 1, len(in)}
	return true
}

// spaceFrom is the first space in in[pos:], or len(in) (pos, when past
// it): the values before one in the combined format are a few bytes,
// where eight bytes at a time is done before a call to the byte search
// would return.
func spaceFrom(in []byte, pos int) int {
	for ; pos+8 <= len(in); pos += 8 {
		w := binary.LittleEndian.Uint64(in[pos:]) ^ ones*' '
		if m := (w - ones) &^ w & highs; m != 0 {
			return pos + bits.TrailingZeros64(m)/8
		}
	}
	for pos < len(in) && in[pos] != ' ' {
		pos++
	}
	return pos
}

// dashQuote reports whether in[pos:] starts with `-"`: "-", the common
// referer and X-Forwarded-For, needs no search for its closing quote.
func dashQuote(in []byte, pos int) bool {
	return pos+1 < len(in) && in[pos] == '-' && in[pos+1] == '"'
}

// quoteAt is the first '"' in in[pos:], or -1.
func quoteAt(in []byte, pos int) int {
	if pos > len(in) {
		return -1
	}
	if i := bytes.IndexByte(in[pos:], '"'); i >= 0 {
		return pos + i
	}
	return -1
}

// indexShort is indexFrom for values of a few bytes, where a byte loop is
// done before a call to the SIMD search would return. Not inlined, so that
// its loop keeps its values in registers.
//
//go:noinline
func indexShort(in []byte, pos int, lit []byte) int {
	c := lit[0]
	for ; pos < len(in); pos++ {
		if in[pos] == c && hasAt(in, pos+1, lit[1:]) {
			return pos
		}
	}
	return -1
}

// multiEnd finds the end of an unquoted multi-value upstream variable:
// values joined by ", " or " : ", followed by a single space. The values
// are a few bytes ("-", "0.012", "10.0.0.1:8080"): looking at eight bytes
// at a time finds each space before a call to the byte search would return.
func multiEnd(in []byte, pos int) int {
	start := pos
	for {
		sp := pos
		for ; sp+8 <= len(in); sp += 8 {
			w := binary.LittleEndian.Uint64(in[sp:]) ^ ones*' '
			if m := (w - ones) &^ w & highs; m != 0 {
				// The lowest high bit marks the first zero byte of w:
				// the first space.
				sp += bits.TrailingZeros64(m) / 8
				goto found
			}
		}
		for sp < len(in) && in[sp] != ' ' {
			sp++
		}
	found:
		switch {
		case sp == len(in):
			return len(in)
		case sp > start && in[sp-1] == ',':
			pos = sp + 1
		case sp+2 < len(in) && in[sp+1] == ':' && in[sp+2] == ' ':
			pos = sp + 3
		default:
			return sp
		}
	}
}

// fill interprets the raw values the Record needs. Priorities between
// variables that say the same thing ($request over $request_method, $host
// over $server_name) live here, independent of their order in the format.
func (f *Format) fill(r *Record) error {
	s := &f.slotOf

	if i := s[kRemoteAddr]; i >= 0 {
		r.RemoteAddr = dashless(r.val(i))
	}
	if i, v := f.firstLogged(r, kTimeLocal, kTimeISO, kMsec); i >= 0 {
		t, ok := r.parseTime(v)
		if !ok {
			return r.failValue(ReasonBadTime, f.vars[i], v, r.offset(i), "a time")
		}
		r.Time = t
	}

	if f.hasRequest {
		f.fillRequest(r)
	}
	if err := f.fillNumbers(r); err != nil {
		return err
	}
	if f.hasUpstream {
		if err := f.fillUpstream(r); err != nil {
			return err
		}
	}
	if f.hasIdentity {
		f.fillIdentity(r)
	}
	return nil
}

// firstLogged returns the slot and value of the first of the kinds a, b, c
// that the line holds a value for, or -1.
func (f *Format) firstLogged(r *Record, a, b, c kind) (int, []byte) {
	// Written out: a loop over the three kinds cost about 25 instructions
	// a call more.
	if i, v := f.logged(r, a); v != nil {
		return i, v
	}
	if i, v := f.logged(r, b); v != nil {
		return i, v
	}
	if i, v := f.logged(r, c); v != nil {
		return i, v
	}
	return -1, nil
}

// logged returns the slot of kind k and its value, nil when the format
// does not log it or the line logged "-" or nothing.
func (f *Format) logged(r *Record, k kind) (int, []byte) {
	if i := f.slotOf[k]; i >= 0 {
		return i, dashless(r.val(i))
	}
	return -1, nil
}

// fillRequest fills the method, path, query and protocol, from $request or
// from the variables that log them apart.
func (f *Format) fillRequest(r *Record) {
	s := &f.slotOf
	if i := s[kRequest]; i >= 0 {
		f.setRequest(r, r.val(i))
	}
	if i := s[kMethod]; i >= 0 && r.Method == nil {
		if v := r.val(i); validMethod(v) {
			r.Method = v
		}
	}
	if r.Path == nil && r.Query == nil {
		if i := s[kRequestURI]; i >= 0 && dashless(r.val(i)) != nil {
			f.setURI(r, r.val(i))
		} else if i := s[kURI]; i >= 0 && dashless(r.val(i)) != nil {
			r.Path = f.decode(r, r.val(i))
		}
	}
	if i := s[kArgs]; i >= 0 && r.Query == nil {
		if v := dashless(r.val(i)); v != nil {
			r.Query = f.decode(r, v)
		}
	}
	if i := s[kProtocol]; i >= 0 && r.Protocol == nil {
		r.Protocol = dashless(r.val(i))
	}
}

// fillNumbers fills the status, the byte counts and the request time.
// Each kind is written out, here and in fillUpstream: a helper taking the
// destination is not inlined (its error path is too large) and cost about
// 160 instructions a line of main_timed.
func (f *Format) fillNumbers(r *Record) error {
	s := &f.slotOf
	if i := s[kStatus]; i >= 0 {
		if v := r.val(i); v != nil {
			st, ok := parseStatus(v)
			if !ok {
				return r.failValue(ReasonBadStatus, f.vars[i], v, r.offset(i), "a 3-digit status")
			}
			r.Status = st
		}
	}
	if i := s[kBodyBytes]; i >= 0 {
		if v := r.val(i); v != nil {
			n, ok := parseCount(v)
			if !ok {
				return r.failValue(ReasonBadNumber, f.vars[i], v, r.offset(i), "a number")
			}
			r.BodyBytes = n
		}
	}
	if i := s[kBytesSent]; i >= 0 {
		if v := r.val(i); v != nil {
			n, ok := parseCount(v)
			if !ok {
				return r.failValue(ReasonBadNumber, f.vars[i], v, r.offset(i), "a number")
			}
			r.BytesSent = n
		}
	}
	if i := s[kRequestTime]; i >= 0 {
		if v := r.val(i); v != nil {
			d, ok := parseSeconds(v)
			if !ok {
				return r.failValue(ReasonBadNumber, f.vars[i], v, r.offset(i), "seconds")
			}
			r.RequestTime = d
		}
	}
	return nil
}

// fillUpstream fills the upstream times, status, address and tries; of
// several upstreams tried, times add up and the last status and address
// count.
func (f *Format) fillUpstream(r *Record) error {
	s := &f.slotOf
	tries := -1
	if i := s[kUpResponseTime]; i >= 0 {
		if v := r.val(i); v != nil {
			sum, n, ok := upstreamSum(v)
			if !ok {
				return f.badUpstreamTime(r, i)
			}
			r.UpstreamResponseTime = sum
			if !isDash(v) {
				tries = n
			}
		}
	}
	if i := s[kUpConnectTime]; i >= 0 {
		if v := r.val(i); v != nil {
			sum, _, ok := upstreamSum(v)
			if !ok {
				return f.badUpstreamTime(r, i)
			}
			r.UpstreamConnectTime = sum
		}
	}
	if i := s[kUpHeaderTime]; i >= 0 {
		if v := r.val(i); v != nil {
			sum, _, ok := upstreamSum(v)
			if !ok {
				return f.badUpstreamTime(r, i)
			}
			r.UpstreamHeaderTime = sum
		}
	}
	if i := s[kUpStatus]; i >= 0 {
		if v := r.val(i); v != nil {
			last, n := upstreamLast(v)
			if last != nil && !isDash(last) {
				st, ok := parseStatus(last)
				if !ok {
					return r.failValue(ReasonBadStatus, f.vars[i], v, r.offset(i), "3-digit statuses joined by \", \" and \" : \"")
				}
				r.UpstreamStatus = st
			}
			tries = n
		}
	}
	if i := s[kUpAddr]; i >= 0 {
		if v := r.val(i); v != nil {
			last, n := upstreamLast(v)
			r.UpstreamAddr = dashless(last)
			tries = n
		}
	}
	if tries > 0 {
		r.UpstreamTries = tries
	}
	return nil
}

func (f *Format) badUpstreamTime(r *Record, i int) error {
	v := r.val(i)
	return r.failValue(ReasonBadNumber, f.vars[i], v, r.offset(i), "seconds, or values joined by \", \" and \" : \"")
}

// fillIdentity fills the virtual host, the request id and the trace id.
func (f *Format) fillIdentity(r *Record) {
	s := &f.slotOf
	if i, v := f.firstLogged(r, kHost, kServerName, kHTTPHost); i >= 0 {
		r.VHost = f.hostName(r, v)
	}
	if i := s[kRequestID]; i >= 0 {
		r.RequestID = dashless(r.val(i))
	}
	if i := s[kTraceID]; i >= 0 {
		r.TraceID = traceID(r.val(i))
	}
	if i := s[kTraceparent]; i >= 0 && r.TraceID == nil {
		r.TraceID = traceparentID(r.val(i))
	}
}

// decode returns the text of a raw value: the value itself when it holds no
// escape, else its unescaped copy in the Record's scratch buffer. The result
// is capped so that a later append to scratch never writes into it.
func (f *Format) decode(r *Record, b []byte) []byte {
	if !needsUnescape(b, f.escape) {
		return b
	}
	start := len(r.scratch)
	r.scratch = Unescape(r.scratch, b, f.escape)
	return r.scratch[start:len(r.scratch):len(r.scratch)]
}

// setRequest splits "$request", the request line as the client sent it.
// "-", an empty line or anything that does not start with an HTTP method
// token (a TLS handshake on a plain port, a port scan) leaves Method empty:
// the request is real and is counted, under an unknown method.
func (f *Format) setRequest(r *Record, req []byte) {
	// The method is found by the loop that checks it: it is a few bytes,
	// where a call to the byte search would cost more.
	sp := methodLen(req)
	if sp == 0 || sp == len(req) || req[sp] != ' ' {
		return
	}
	r.Method = req[:sp]
	uri := req[sp+1:]
	if n := len(uri); n >= 9 && uri[n-9] == ' ' && string(uri[n-8:n-3]) == "HTTP/" && uri[n-3] != ' ' && uri[n-2] != ' ' && uri[n-1] != ' ' {
		// "HTTP/1.1", "HTTP/2.0": the common protocols, without the search.
		r.Protocol = uri[n-8:]
		uri = uri[:n-9]
	} else if j := bytes.LastIndexByte(uri, ' '); j >= 0 && bytes.HasPrefix(uri[j+1:], httpSlash) {
		r.Protocol = uri[j+1:]
		uri = uri[:j]
	}
	f.setURI(r, uri)
}

var httpSlash = []byte("HTTP/")

func (f *Format) setURI(r *Record, uri []byte) {
	path, query := uri, []byte(nil)
	if q := bytes.IndexByte(uri, '?'); q >= 0 {
		path, query = uri[:q], uri[q+1:]
	}
	if !needsUnescape(uri, f.escape) {
		// Neither part holds an escape: one search, not one a part.
		r.Path, r.Query = path, query
		return
	}
	r.Path = f.decode(r, path)
	if query != nil {
		r.Query = f.decode(r, query)
	}
}

// validMethod accepts an HTTP method token as servers see them: upper-case
// letters, '-' or '_' (M-SEARCH, VERSION-CONTROL), at most 20 bytes.
func validMethod(b []byte) bool { return len(b) > 0 && methodLen(b) == len(b) }

// methodLen is the length of the method token b starts with, 0 for none.
func methodLen(b []byte) int {
	if len(b) >= 4 && binary.LittleEndian.Uint32(b) == getSP {
		return 3 // "GET ", most requests
	}
	n := 0
	for n < len(b) && n <= maxMethod && methodByte(b[n]) {
		n++
	}
	if n == 0 || n > maxMethod || b[0] < 'A' || b[0] > 'Z' {
		return 0
	}
	return n
}

const maxMethod = 20

// getSP is "GET " as a little-endian word.
const getSP = 'G' | 'E'<<8 | 'T'<<16 | ' '<<24

func methodByte(c byte) bool { return c >= 'A' && c <= 'Z' || c == '-' || c == '_' }

// hostName strips a port ("example.com:8443", "[2001:db8::1]:443") and
// lower-cases, as $http_host and $server_name may carry both; $host already
// comes without port and lower-cased, and is then used as is.
func (f *Format) hostName(r *Record, b []byte) []byte {
	// $host, the common case, has nothing to strip, lower or unescape: one
	// pass tells.
	if plainHost(b) && len(b) > 0 && b[0] != '[' {
		if n := len(b); n > 1 && b[n-1] == '.' {
			b = b[:n-1]
		}
		return b
	}
	b = f.decode(r, b)
	if len(b) == 0 {
		return nil
	}
	if b[0] == '[' {
		if j := bytes.IndexByte(b, ']'); j > 0 {
			b = b[:j+1]
		}
	} else if c := bytes.IndexByte(b, ':'); c >= 0 && bytes.IndexByte(b[c+1:], ':') < 0 {
		// One colon is host:port; more is a bare IPv6 address, kept whole.
		b = b[:c]
	}
	if n := len(b); n > 1 && b[n-1] == '.' {
		b = b[:n-1] // "example.com." is the same vhost
	}
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			start := len(r.scratch)
			for _, c := range b {
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				r.scratch = append(r.scratch, c)
			}
			return r.scratch[start:len(r.scratch):len(r.scratch)]
		}
	}
	return b
}

// plainHost reports whether b holds none of the bytes hostSpecial marks,
// eight bytes at a time (a host name is 10-30 bytes), the last word
// overlapping the one before.
func plainHost(b []byte) bool {
	if len(b) < 8 {
		for _, c := range b {
			if hostSpecial[c] {
				return false
			}
		}
		return true
	}
	for i := 0; ; i += 8 {
		i = min(i, len(b)-8)
		w := binary.LittleEndian.Uint64(b[i:])
		// Each byte's low 7 bits; a byte of 0x80 or more is not special.
		t := w &^ highs
		upper := (t + ones*(0x80-'A')) &^ (t + ones*(0x80-'Z'-1))
		colon, slash := t^(ones*':'), t^(ones*'\\')
		// A byte of x (below 0x80) is zero where x+0x7f has no high bit.
		eq := ^(colon + ones*0x7f) | ^(slash + ones*0x7f)
		if (upper|eq)&^w&highs != 0 {
			return false
		}
		if i == len(b)-8 {
			return true
		}
	}
}

// hostSpecial marks the bytes after which a host name is not used as
// logged: upper case, a port's colon, an escape. A table lookup is half
// the instructions of the three tests.
var hostSpecial = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	t[':'], t['\\'] = true, true
	return t
}()

// traceID accepts a W3C trace id: 32 lower-case hex digits, not all zero.
func traceID(b []byte) []byte {
	if len(b) != 32 {
		return nil
	}
	zero := true
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil
		}
		if c != '0' {
			zero = false
		}
	}
	if zero {
		return nil
	}
	return b
}

// traceparentID extracts the trace id of a W3C traceparent header,
// "00-<trace-id>-<parent-id>-<flags>".
func traceparentID(b []byte) []byte {
	if len(b) < 55 || b[2] != '-' || b[35] != '-' || b[52] != '-' {
		return nil
	}
	return traceID(b[3:35])
}
