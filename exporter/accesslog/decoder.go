package accesslog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"regexp"
	"strings"
	"time"
)

// Rule chooses Format for the records whose envelope field Field matches
// Match.
type Rule struct {
	// Field is a dotted path into the Filebeat event, e.g. "log.file.path" or
	// "fields.log_type". Nested objects and keys that themselves contain dots
	// ({"fields.log_type": ...}) both match. "log.file.path" and "host.name"
	// also read their Filebeat 6.x names, source and beat.hostname, so one
	// rule covers old and new shippers.
	Field  string
	Match  *regexp.Regexp
	Format *Format
}

// DecoderConfig says which formats a stream carries and how to tell them
// apart.
type DecoderConfig struct {
	// Default parses raw records and envelopes no rule matches. Required.
	Default *Format
	// Formats are the other formats the stream may carry. Rules name their
	// own; listing them here too makes Decoder.Formats complete for a caller
	// that resolves variable slots per format up front.
	Formats []*Format
	// Rules are tried in order; the first match wins. A record without the
	// field (a raw record, an event without it) matches no rule on it.
	Rules []Rule
	// CacheSize bounds how many distinct values of each rule field keep
	// their regexp outcome; past it the cache starts over. 0 means 1024,
	// plenty for file paths and log types.
	CacheSize int
}

// maxRules keeps the per-value cache entry a single bitmask.
const maxRules = 64

// Decoder turns Kafka record values into Records: it recognises a Filebeat
// envelope, picks the format and parses the line. It keeps scratch state
// between calls and is not safe for concurrent use: give each goroutine its
// own (they are cheap; Formats are shared).
type Decoder struct {
	def       *Format
	formats   []*Format
	rules     []rule
	cacheSize int

	wants []string // envelope fields read, by index: the fixed ones, then rule fields
	// vals is where their raw values are in cur; absent when end is 0.
	// Offsets, not slices: storing them needs no write barrier, and
	// clearing them no pointer-aware clear.
	vals  []span
	cur   []byte     // the record value being decoded
	msg   []byte     // the message, unescaped; nil when there is none
	cache []ruleMemo // by want index; nil map for fields no rule reads
	root  field      // wants as a tree of keys, which the walk follows
	buf   []byte     // an unescaped rule field value
	// line receives the unescaped message while the envelope is walked:
	// Record.lineBuf of the record being decoded.
	line  []byte
	tsDay isoDay // the date of the last @timestamp
	// tsKey is the last @timestamp in Filebeat's form up to its seconds
	// ("2025-10-10T11:55:36", then ".123Z"), whose instant is tsSec.
	tsKey [19]byte
	tsSec int64
	// skipped remembers values skipped before (see skip).
	skipped *[skipSets]skipSet
	// msgAt is the offset of a top-level "message" whose value is not a
	// string, or -1: such a record is a broken envelope, not a raw line.
	msgAt int
	// messageAt is where the message string starts (Record.MessageAt).
	messageAt int
}

type rule struct {
	want   int
	alt    int // the field's older name, read when want is absent; -1 for none
	match  *regexp.Regexp
	format *Format
}

// ruleMemo remembers, per distinct field value, which rules matched it (bit
// i is rule i), so the regexps run once per value, not once per line.
type ruleMemo map[string]uint64

// The envelope fields every Decoder reads, by their index in wants.
const (
	wMessage   = iota // the line; its presence as a string makes a record an envelope
	wTimestamp        // @timestamp
	wHostName         // host.name (Filebeat >= 6.3)
	wBeatHost         // beat.hostname (Filebeat 6.x)
	wAgentHost        // agent.hostname (Filebeat 7.x)
	wHost             // host as a plain string (events re-shipped by Logstash)
	wFilePath         // log.file.path (Filebeat >= 7)
	wSource           // source (Filebeat 6.x)
	numFixedWants
)

var fixedWants = [numFixedWants]string{"message", "@timestamp", "host.name", "beat.hostname", "agent.hostname", "host", "log.file.path", "source"}

// NewDecoder checks cfg and builds a Decoder.
func NewDecoder(cfg DecoderConfig) (*Decoder, error) {
	if cfg.Default == nil {
		return nil, errors.New("accesslog: decoder: no default format")
	}
	if len(cfg.Rules) > maxRules {
		return nil, fmt.Errorf("accesslog: decoder: %d rules, at most %d", len(cfg.Rules), maxRules)
	}
	d := &Decoder{def: cfg.Default, cacheSize: cfg.CacheSize, wants: fixedWants[:]}
	if d.cacheSize <= 0 {
		d.cacheSize = 1024
	}
	d.addFormat(cfg.Default)
	for _, f := range cfg.Formats {
		if f != nil {
			d.addFormat(f)
		}
	}
	for i, ru := range cfg.Rules {
		switch {
		case ru.Field == "":
			return nil, fmt.Errorf("accesslog: decoder: rule %d: no field", i+1)
		case ru.Match == nil:
			return nil, fmt.Errorf("accesslog: decoder: rule %d: no match", i+1)
		case ru.Format == nil:
			return nil, fmt.Errorf("accesslog: decoder: rule %d: no format", i+1)
		}
		w := -1
		for j, name := range d.wants {
			if name == ru.Field {
				w = j
			}
		}
		if w < 0 {
			d.wants = append(d.wants, ru.Field)
			w = len(d.wants) - 1
		}
		alt := -1
		switch w {
		case wFilePath:
			alt = wSource
		case wHostName:
			alt = wBeatHost
		}
		d.rules = append(d.rules, rule{want: w, alt: alt, match: ru.Match, format: ru.Format})
		d.addFormat(ru.Format)
	}
	d.root = field{want: -1}
	for i, w := range d.wants {
		d.root.add(w, i)
	}
	d.root.index()
	d.root.markMoot()
	d.root.setKeys()
	d.skipped = new([skipSets]skipSet)
	d.vals = make([]span, len(d.wants))
	d.cache = make([]ruleMemo, len(d.wants))
	for _, ru := range d.rules {
		if d.cache[ru.want] == nil {
			d.cache[ru.want] = make(ruleMemo)
		}
	}
	return d, nil
}

func (d *Decoder) addFormat(f *Format) {
	for _, g := range d.formats {
		if g == f {
			return
		}
	}
	d.formats = append(d.formats, f)
}

// Formats lists every format the Decoder may put in Record.Format, the
// default first.
func (d *Decoder) Formats() []*Format { return append([]*Format(nil), d.formats...) }

// Decode decodes one Kafka record value into r. A JSON object with a string
// "message" is a Filebeat event: its message is the line and its host, file
// and timestamp fill the Record. Anything else is the line itself, parsed
// with the default format (as a JSON access line when that format is JSON).
//
// On error r still holds Line, the envelope fields and the chosen Format, so
// the line can be forwarded; the error is a *ParseError.
func (d *Decoder) Decode(value []byte, r *Record) error {
	r.reset()
	value = trimEOL(value)
	if i := skipWS(value, 0); i < len(value) && value[i] == '{' {
		clear(d.vals)
		d.cur, d.msg = value, nil
		d.msgAt = -1
		d.line = r.lineBuf[:0]
		end, ok := d.walk(value, i, &d.root)
		r.lineBuf, d.line = d.line[:0], nil // the record keeps what the message grew it to
		if ok && skipWS(value, end) == len(value) {
			if d.msg != nil {
				return d.decodeEnvelope(r)
			}
			if d.msgAt >= 0 && !d.def.json {
				r.Line = value
				r.setFormat(d.def)
				return r.fail(ReasonBadJSON, "", value, d.msgAt, `"message" as a JSON string`, nil)
			}
		}
	}
	return d.def.parseLine(value, r)
}

func (d *Decoder) decodeEnvelope(r *Record) error {
	r.Enveloped, r.MessageAt = true, d.messageAt
	line := d.msg // unescaped already, by the walk
	r.Host = d.envString(r, wHostName, wBeatHost, wAgentHost, wHost)
	r.File = d.envString(r, wFilePath, wSource, -1, -1)
	f := d.choose()
	if ts := d.val(wTimestamp); ts != nil {
		t, ok := d.timestamp(ts)
		if !ok {
			// The shipper's clock is as suspect as nginx's: a time past
			// 2262 would wrap wherever it is used as nanoseconds.
			r.Line = trimEOL(line)
			r.setFormat(f)
			return r.failValue(ReasonBadTime, "@timestamp", ts, 0, "an RFC 3339 time from 1970 to 2199")
		}
		r.Timestamp = t
	}
	return f.parseLine(trimEOL(line), r)
}

// timestamp reads the @timestamp ts. Filebeat writes it as
// "2025-10-10T11:55:36.123Z", and the lines of one second (most of a busy
// stream's) share its first 19 bytes: their instant is read once, then
// only the milliseconds.
func (d *Decoder) timestamp(ts []byte) (time.Time, bool) {
	if len(ts) == 24 && ts[19] == '.' && ts[23] == 'Z' {
		if d.tsSec != 0 && [19]byte(ts) == d.tsKey {
			a, b, c := ts[20]-'0', ts[21]-'0', ts[22]-'0'
			if a <= 9 && b <= 9 && c <= 9 {
				ms := int64(a)*100 + int64(b)*10 + int64(c)
				return time.Unix(d.tsSec, ms*1e6).In(time.UTC), true
			}
		}
		t, ok := parseISO8601Day(ts, &d.tsDay)
		if ok && t.Unix() != 0 { // 0 marks tsKey unset
			d.tsKey, d.tsSec = [19]byte(ts), t.Unix()
		}
		return t, ok
	}
	return parseISO8601Day(ts, &d.tsDay)
}

// EnvelopeLine returns the Line that Decode gave for an envelope value
// whose Record.MessageAt was at, unescaped into dst when it has escapes:
// one string scan instead of a walk and a parse. ok is false when value
// holds no closed string there.
func EnvelopeLine(value []byte, at int, dst []byte) (line []byte, ok bool) {
	if at < 0 || at > len(value) {
		return nil, false
	}
	_, text, _, ok := scanJSONString(value, at, dst[:0])
	if !ok {
		return nil, false
	}
	return trimEOL(text), true
}

// val is the raw value of want w, nil when absent.
func (d *Decoder) val(w int) []byte {
	if s := d.vals[w]; s.end != 0 {
		return d.cur[s.start:s.end]
	}
	return nil
}

// envString returns the first present of up to four envelope fields, decoded.
func (d *Decoder) envString(r *Record, ws ...int) []byte {
	for _, w := range ws {
		if w < 0 || d.vals[w].end == 0 {
			continue
		}
		v := d.val(w)
		if !needsUnescape(v, EscapeJSON) {
			return v
		}
		start := len(r.envBuf)
		r.envBuf = Unescape(r.envBuf, v, EscapeJSON)
		return r.envBuf[start:len(r.envBuf):len(r.envBuf)]
	}
	return nil
}

// choose applies the rules to the current envelope's fields.
func (d *Decoder) choose() *Format {
	for i, ru := range d.rules {
		v := d.val(ru.want)
		if v == nil && ru.alt >= 0 {
			v = d.val(ru.alt)
		}
		if v == nil {
			continue
		}
		memo := d.cache[ru.want]
		mask, ok := memo[string(v)] // no allocation: the compiler reads through the []byte
		if !ok {
			mask = d.evaluate(ru.want, v)
			if len(memo) >= d.cacheSize {
				clear(memo)
			}
			memo[string(v)] = mask
		}
		if mask&(1<<uint(i)) != 0 {
			return ru.format
		}
	}
	return d.def
}

// evaluate runs every rule on field w against the value v.
func (d *Decoder) evaluate(w int, v []byte) uint64 {
	if needsUnescape(v, EscapeJSON) {
		d.buf = Unescape(d.buf[:0], v, EscapeJSON)
		v = d.buf
	}
	var mask uint64
	for i, ru := range d.rules {
		if ru.want == w && ru.match.Match(v) {
			mask |= 1 << uint(i)
		}
	}
	return mask
}

// walk reads the object at b[i], whose keys are looked up among the
// children of n: it keeps where the values of wanted fields are, descends
// only into objects that hold one, and skips everything else without
// decoding it. The message, the one long value, is unescaped in the same
// pass that finds its end. It reports false for malformed JSON.
//
// An object it descends into is read by the same loop, not a call: n
// becomes the field, and its parent again at the object's end (walk's
// state is few values, but a call reloads them all).
func (d *Decoder) walk(b []byte, i int, n *field) (int, bool) {
	depth := 0
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, false
		}
		ks := i + 1
		var f *field
		ke := -1
		if ks+16 <= len(b) {
			f, ke = n.keys.find(binary.LittleEndian.Uint64(b[ks:ks+8]), binary.LittleEndian.Uint64(b[ks+8:ks+16]), ks)
		}
		if ke < 0 {
			var known bool
			if f, ke, known = n.match(b, ks); ke < 0 {
				if ke = jsonStringEnd(b, ks); ke < 0 {
					return 0, false
				}
				if !known {
					f = n.lookup(b[ks:ke])
				}
			}
			n.keys.add(b[ks:ke+1], f)
		}
		// Shippers write "key":value, no whitespace: the colon and the
		// value's first byte in one test, skipWS only when that fails.
		if i = ke + 1; i+1 < len(b) && b[i] == ':' && b[i+1] > ' ' {
			i++
		} else {
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			i = skipWS(b, i+1)
			if i >= len(b) {
				return 0, false
			}
		}
		switch c := b[i]; {
		case f == nil && c == '"':
			if i = jsonStringEnd(b, i+1); i < 0 {
				return 0, false
			}
			i++
		case f == nil && c != '{' && c != '[':
			// A number, true, false or null (Filebeat's log.offset).
			end := jsonScalarEnd(b, i)
			if end == i {
				return 0, false
			}
			i = end
		case f == nil || c == '{' && f.moot && d.vals[wHostName].end != 0:
			if i = d.skip(b, i, depth); i < 0 {
				return 0, false
			}
		case c == '{' && len(f.kids) > 0 && depth < maxJSONDepth:
			if i = skipWS(b, i+1); i < len(b) && b[i] == '}' {
				i++
				break
			}
			n, depth = f, depth+1
			continue // the object's first member
		case c == '"' && f.want == wMessage:
			if i = d.message(b, i); i < 0 {
				return 0, false
			}
		case c == '"':
			vs, ve, ok := jsonStringAt(b, i)
			if !ok {
				return 0, false
			}
			if f.want >= 0 {
				d.vals[f.want] = span{vs, ve}
			}
			i = ve + 1
		case c == '{' || c == '[':
			if f.want == wMessage {
				d.msgAt = i
			}
			if i = jsonSkip(b, i, depth); i < 0 {
				return 0, false
			}
		default:
			if i = d.scalar(b, i, f); i < 0 {
				return 0, false
			}
		}
		// After a value: the next member, or the end of this object and
		// maybe of those it is in.
		for {
			if i = skipWS(b, i); i >= len(b) {
				return 0, false
			}
			if c := b[i]; c == ',' {
				i = skipWS(b, i+1)
				break
			} else if c != '}' {
				return 0, false
			}
			i++
			if depth == 0 {
				return i, true
			}
			n, depth = n.parent, depth-1
		}
	}
}

// field is a node of the tree of envelope fields a Decoder reads:
// "log.file.path" is "path" under "file" under "log".
type field struct {
	name string
	want int // index in Decoder.wants, or -1 for an object on the way to one
	kids []field

	// A key is compared with the name and the byte after it, '"' (the key
	// is the name) or '.' (a dotted key goes on below): for a name of up
	// to 7 bytes that is one word, exact or dotted over mask; a longer one
	// compares head, its first 8 bytes, then the rest.
	exact, dotted, mask, head uint64
	// plain: no kid's name holds '"' or '\\', so a name's bytes in the
	// input are a key's own and the byte after them ends it or not; and
	// there are at most 64 kids, so that
	plain bool
	// first has bit i set in the entry of the low 4 bits of kid i's first
	// byte: a key is compared with the one or two kids it may be, not all.
	first  [16]uint64
	parent *field // nil for the root
	// keys remembers the keys met among the kids (see keyCache).
	keys *keyCache
	// moot: every field below is an older name of the host, read only
	// when host.name is absent (agent.hostname, beat.hostname), so once
	// host.name is read the object is skipped, not walked.
	moot bool
}

// keyCache remembers the keys a walk met in an object, with what match
// and lookup found for them: a shipper writes the same few keys on every
// line, and one known is recognised by its first 16 bytes (masked to the
// key and its closing quote), without match's search among the kids or
// the search for its end. keySets sets of keyWays, by the key's first 3
// bytes (with its quote and colon, for a key shorter than that).
type keyCache struct {
	set [keySets]keySet
}

const (
	keySets = 16
	keyWays = 4
)

// keySet holds the keys whose first 3 bytes chose it; next is the way
// replaced next.
type keySet struct {
	e    [keyWays]cachedKey
	next int
}

// cachedKey is a key of up to 15 bytes followed by its quote: the bytes
// under m1 and m2 of the first two words at the key are w1 and w2.
type cachedKey struct {
	m1, w1, m2, w2 uint64
	f              *field
	n              int // the key's length
}

// find returns the field of the key whose first two words (from its first
// byte) are w1 and w2, and the index of its closing quote, the key
// starting at b[ks]; ke is -1 when the key is not in the cache.
func (c *keyCache) find(w1, w2 uint64, ks int) (f *field, ke int) {
	s := &c.set[keySetOf(w1)]
	for k := range s.e {
		e := &s.e[k]
		if w1&e.m1 == e.w1 && w2&e.m2 == e.w2 && e.m1 != 0 {
			return e.f, ks + e.n
		}
	}
	return nil, -1
}

// add remembers key (its bytes and closing quote) as naming f, when it is
// short enough and holds no escape.
func (c *keyCache) add(key []byte, f *field) {
	n := len(key) - 1
	if n < 1 || n > 15 || bytes.IndexByte(key[:n], '\\') >= 0 {
		return
	}
	var w [16]byte
	copy(w[:], key)
	e := cachedKey{m1: ^uint64(0), f: f, n: n}
	if n < 7 {
		e.m1 = 1<<(8*(n+1)) - 1
	} else {
		e.m2 = 1<<(8*(n-7)) - 1
	}
	e.w1 = binary.LittleEndian.Uint64(w[:8]) & e.m1
	e.w2 = binary.LittleEndian.Uint64(w[8:]) & e.m2
	set := e.w1
	if n == 1 {
		set |= ':' << 16 // as find sees a key of 1 byte: with the colon after its quote
	}
	s := &c.set[keySetOf(set)]
	s.e[s.next] = e
	s.next = (s.next + 1) % keyWays
}

// keySetOf is a key's set, from the first 3 bytes at it: a key of 2
// bytes is followed by its quote, one of 1 byte by its quote and, as
// shippers write it, a colon (after a space, it misses the cache).
func keySetOf(w1 uint64) uint64 {
	return ((w1 & 0xffffff) * 0x9e3779b97f4a7c15) >> 60
}

// markMoot sets moot on the root's kids whose fields are all older names
// of host.name.
func (n *field) markMoot() {
	for i := range n.kids {
		k := &n.kids[i]
		k.moot = len(k.kids) > 0 && k.onlyWants(wBeatHost, wAgentHost)
	}
}

// setKeys gives n and every field below with kids a keyCache, and their
// parent to the kids.
func (n *field) setKeys() {
	if len(n.kids) == 0 {
		return
	}
	n.keys = new(keyCache)
	for i := range n.kids {
		n.kids[i].parent = n
		n.kids[i].setKeys()
	}
}

// onlyWants reports whether every field at or below n is one of a or b.
func (n *field) onlyWants(a, b int) bool {
	if n.want >= 0 && n.want != a && n.want != b {
		return false
	}
	for i := range n.kids {
		if !n.kids[i].onlyWants(a, b) {
			return false
		}
	}
	return true
}

// skipSets and skippedMax size the memory of skipped values: 8 sets of
// 2 values of up to 256 bytes, 4 KiB a Decoder.
const (
	skipSets   = 8
	skippedMax = 256
)

// skippedValue is an object or array jsonSkip read whole at nesting
// depth: the same bytes at a nesting no deeper are that same value again.
// key is the words that chose its set, compared before the bytes.
type skippedValue struct {
	key      uint64
	n, depth int
	text     [skippedMax]byte
}

// skipSet holds two skipped values; old is the one replaced next.
type skipSet struct {
	v   [2]skippedValue
	old int
}

// skip returns the index after the value at b[i], which no field wants.
// A shipper repeats the objects an envelope carries beside the message
// (Filebeat's @metadata, input, ecs, and agent once host.name is read)
// byte for byte on every line: an object or array met before is
// recognised by one comparison instead of being read again. JSON's grammar
// decides where a value ends from its own bytes alone, so equal bytes are
// an equal, well-formed value.
func (d *Decoder) skip(b []byte, i, depth int) int {
	if c := b[i]; c != '{' && c != '[' || len(b)-i < 16 {
		return jsonSkip(b, i, depth)
	}
	// The key is the value's first and third words (or second, at the
	// end of b): objects of one shipper differ in their first key, those
	// of different hosts (the agent's ids) by what follows it.
	key := binary.LittleEndian.Uint64(b[i:])
	if len(b)-i >= 24 {
		key ^= binary.LittleEndian.Uint64(b[i+16:]) << 1
	} else {
		key ^= binary.LittleEndian.Uint64(b[i+8:]) << 1
	}
	set := &d.skipped[(key*0x9e3779b97f4a7c15)>>61]
	for k := range set.v {
		m := &set.v[k]
		if n := m.n; m.key == key && n > 0 && n <= len(b)-i && depth <= m.depth && string(b[i:i+n]) == string(m.text[:n]) {
			set.old = 1 - k
			return i + n
		}
	}
	end := jsonSkip(b, i, depth)
	if n := end - i; end > 0 && n <= skippedMax {
		m := &set.v[set.old]
		set.old = 1 - set.old
		m.key, m.n, m.depth = key, n, depth
		copy(m.text[:], b[i:end])
	}
	return end
}

// message unescapes the message string at b[i] into the line buffer as it
// finds its end, which it returns; -1 for a string not closed.
func (d *Decoder) message(b []byte, i int) int {
	end, text, copied, ok := scanJSONString(b, i+1, d.line[:0])
	if !ok {
		return -1
	}
	d.messageAt = i + 1
	if copied {
		d.line = text // unescaped into the buffer: keep its growth
	}
	d.msg = text
	return end + 1
}

// scalar reads the number, boolean or null at b[i] for field f and returns
// its end; -1 when there is none.
func (d *Decoder) scalar(b []byte, i int, f *field) int {
	end := jsonScalarEnd(b, i)
	if end == i {
		return -1
	}
	// A number or boolean can drive a rule; the message must be a string
	// for the record to be an envelope.
	switch v := b[i:end]; {
	case f.want == wMessage:
		d.msgAt = i
	case f.want > wMessage && string(v) != "null":
		d.vals[f.want] = span{i, end}
	}
	return end
}

// index precomputes the words match compares, for n and the tree below.
func (n *field) index() {
	n.plain = len(n.kids) <= 64
	for i := range n.kids {
		k := &n.kids[i]
		k.index()
		if strings.ContainsAny(k.name, `"\`) {
			n.plain = false
			continue
		}
		if k.name == "" {
			// The key is '"' or starts with '.'.
			n.first['"'&15] |= 1 << (i & 63)
			n.first['.'&15] |= 1 << (i & 63)
		} else {
			n.first[k.name[0]&15] |= 1 << (i & 63)
		}
		var w uint64
		for j := min(len(k.name), 8) - 1; j >= 0; j-- {
			w = w<<8 | uint64(k.name[j])
		}
		if l := uint(len(k.name)); l < 8 {
			k.mask = 1<<(8*(l+1)) - 1
			k.exact = w | '"'<<(8*l)
			k.dotted = w | '.'<<(8*l)
		} else {
			k.head = w
		}
	}
}

// match looks up the key whose text starts at b[ks] among the children of
// n, following a dotted key down the tree, without first finding where the
// key ends: a child matches when its name is in b followed by '"' or '.'.
// It returns the field and the index of the key's closing quote. When no
// field matches (f is nil), ke is the closing quote if it is in the word
// read, else -1; ke is -1 too when match cannot tell (known is false: a
// name holds a quote or a backslash, left to lookup).
func (n *field) match(b []byte, ks int) (f *field, ke int, known bool) {
	for {
		if !n.plain {
			return nil, -1, false
		}
		var w uint64
		if ks+8 <= len(b) {
			w = binary.LittleEndian.Uint64(b[ks:])
		} else {
			// Near the end of b: bytes past it read as 0, which no name
			// is followed by.
			for j := len(b) - 1; j >= ks; j-- {
				w = w<<8 | uint64(b[j])
			}
		}
		var next *field
		dotted := false
		for m := n.first[w&15]; m != 0; m &= m - 1 {
			k := &n.kids[bits.TrailingZeros64(m)]
			if k.mask != 0 {
				if v := w & k.mask; v == k.exact || v == k.dotted {
					next, dotted = k, v == k.dotted
					break
				}
				continue
			}
			l := len(k.name)
			if w == k.head && ks+l < len(b) && string(b[ks+8:ks+l]) == k.name[8:] {
				if c := b[ks+l]; c == '"' || c == '.' {
					next, dotted = k, c == '.'
					break
				}
			}
		}
		if next == nil {
			// No field: the key is skipped, and when it ends within the
			// word (most keys are short) the word tells where.
			if m := quoteOrBackslash(w); m != 0 {
				if k := ks + bits.TrailingZeros64(m)>>3; k < len(b) && b[k] == '"' {
					return nil, k, true
				}
			}
			return nil, -1, true
		}
		if !dotted {
			return next, ks + len(next.name), true
		}
		n, ks = next, ks+len(next.name)+1
	}
}

func (n *field) add(path string, want int) {
	name, rest, nested := strings.Cut(path, ".")
	for i := range n.kids {
		if n.kids[i].name == name {
			if nested {
				n.kids[i].add(rest, want)
			} else {
				n.kids[i].want = want
			}
			return
		}
	}
	n.kids = append(n.kids, field{name: name, want: -1})
	k := &n.kids[len(n.kids)-1]
	if nested {
		k.add(rest, want)
	} else {
		k.want = want
	}
}

// lookup finds the child named key. A key with dots ({"log.file.path": ...},
// as some shippers flatten events) is followed through the tree.
func (n *field) lookup(key []byte) *field {
	for {
		seg, rest, dotted := key, []byte(nil), false
		if i := bytes.IndexByte(key, '.'); i >= 0 {
			seg, rest, dotted = key[:i], key[i+1:], true
		}
		var next *field
		for i := range n.kids {
			if n.kids[i].name == string(seg) {
				next = &n.kids[i]
				break
			}
		}
		if next == nil || !dotted {
			return next
		}
		n, key = next, rest
	}
}
