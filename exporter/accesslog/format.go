package accesslog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Format is a compiled nginx log_format (or JSON template). It is immutable
// after Compile and safe to share between goroutines.
type Format struct {
	name   string
	source string
	escape Escape
	json   bool // lines are JSON objects (a JSON template, escape=json)

	vars  []string // variable names by slot
	kinds []kind   // what each slot means, by slot
	// slotOf gives the slot of the first variable of each kind, or -1, so
	// that filling the Record is a fixed sequence of array reads.
	slotOf [numKinds]int
	// The groups of kinds the format logs any of: fill skips the others.
	hasRequest, hasUpstream, hasIdentity bool

	text  textOps   // text formats
	jkeys []jsonKey // JSON formats: template keys, then the default mapping
}

// textOps is a log_format compiled to literal/variable pairs.
type textOps struct {
	ops  []op
	tail literal // the literal after the last variable
	// combined: the first ops are nginx's combined format with default
	// escaping, in slots 0-7, read by parseCombined.
	combined bool
	// timed, main: all of t is main_timed's, or main's, read by
	// parseTimedTail or parseMainTail after parseCombined.
	timed, main bool
}

// op matches lit, then reads one variable's value.
type op struct {
	lit   literal
	slot  int
	scan  scanMode
	delim []byte // the next non-empty literal: where the value ends
	// found: the scan before this op matched all of lit where it ended
	// the previous value, so lit needs no second look.
	found bool
}

// scanMode is how a value's end is found, chosen at compile time from the
// variable and the literals around it.
type scanMode uint8

const (
	scanDelim     scanMode = iota // up to the first occurrence of delim
	scanEnd                       // to the end of the input
	scanSuffix                    // last variable: up to the tail the line ends with
	scanQuote                     // default escaping: to the first '"' (nginx writes a '"' in a value as \x22)
	scanQuoteJSON                 // escape=json: to the first '"' not escaped by '\'
	scanMulti                     // upstream "a, b : c" values, whose separators contain delim
	scanTimeLocal                 // $time_local contains a space: take its fixed 26 bytes
	scanNumber                    // variables written back to back: the digits
	scanShort                     // like scanDelim, for values of a few bytes
)

// findsDelim reports the scans that end a value only where the whole of
// delim follows it.
func (m scanMode) findsDelim() bool {
	return m == scanDelim || m == scanShort || m == scanTimeLocal
}

// jsonKey maps a (dotted, for nested objects) JSON key to a slot, or to a
// small text format when the template value mixes text and variables.
type jsonKey struct {
	key  string
	slot int
	sub  *textOps
}

// Name is the format's name (a preset name, a configured name, or "default").
func (f *Format) Name() string { return f.name }

// Index returns the slot of variable name (without '$') in this format, or -1
// when the format does not log it. Callers resolve slots once, not per line.
func (f *Format) Index(name string) int {
	name = strings.ToLower(strings.TrimPrefix(name, "$"))
	for i, v := range f.vars {
		if v == name {
			return i
		}
	}
	return -1
}

// Vars lists the variables the format logs, by slot.
func (f *Format) Vars() []string { return append([]string(nil), f.vars...) }

// Escape is the escaping the format's lines were written with.
func (f *Format) Escape() Escape { return f.escape }

// JSON reports whether lines of this format are JSON objects.
func (f *Format) JSON() bool { return f.json }

// String is the log_format string the Format was compiled from.
func (f *Format) String() string { return f.source }

// Var returns the raw value of the variable in slot i of r.Format, or nil.
// The value is as logged, still escaped; see Unescape. Slots differ between
// formats, so a caller that sees several formats resolves them per format.
func (r *Record) Var(i int) []byte {
	if i < 0 || i >= len(r.vars) {
		return nil
	}
	return r.val(i)
}

// The preset formats.
const (
	// FormatCombined is nginx's predefined "combined" format.
	FormatCombined = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`
	// FormatMain is the "main" format of the nginx.conf that Debian, the
	// nginx.org packages and the official Docker image ship.
	FormatMain = FormatCombined + ` "$http_x_forwarded_for"`
	// FormatMainTimed is the format deploy/ configures nginx with: main plus
	// what the request and upstream metrics need. The upstream variables
	// stay unquoted (their multi-value syntax is parsed as such) and
	// $request_id is last so a future field is appended after it. In
	// nginx.conf:
	//
	//	log_format main_timed '$remote_addr - $remote_user [$time_local] "$request" '
	//	                      '$status $body_bytes_sent "$http_referer" '
	//	                      '"$http_user_agent" "$http_x_forwarded_for" '
	//	                      '$host $request_time $upstream_response_time '
	//	                      '$upstream_connect_time $upstream_header_time '
	//	                      '$upstream_status $upstream_addr $request_id';
	FormatMainTimed = FormatMain + ` $host $request_time $upstream_response_time $upstream_connect_time $upstream_header_time $upstream_status $upstream_addr $request_id`
	// FormatJSON is a JSON template for escape=json (log_format json
	// escape=json '<this string>';). Any JSON access line is read with it,
	// keys not in it through the default key mapping. It logs
	// $http_traceparent rather than $otel_trace_id so that it works on an
	// nginx without the otel module.
	FormatJSON = `{"time":"$time_iso8601","remote_addr":"$remote_addr","remote_user":"$remote_user",` +
		`"request":"$request","status":"$status","body_bytes_sent":"$body_bytes_sent","bytes_sent":"$bytes_sent",` +
		`"request_time":"$request_time","http_referer":"$http_referer","http_user_agent":"$http_user_agent",` +
		`"http_x_forwarded_for":"$http_x_forwarded_for","host":"$host","upstream_addr":"$upstream_addr",` +
		`"upstream_status":"$upstream_status","upstream_response_time":"$upstream_response_time",` +
		`"upstream_connect_time":"$upstream_connect_time","upstream_header_time":"$upstream_header_time",` +
		`"request_id":"$request_id","traceparent":"$http_traceparent"}`
)

var presets = map[string]struct {
	format string
	escape Escape
}{
	"combined":   {FormatCombined, EscapeDefault},
	"main":       {FormatMain, EscapeDefault},
	"main_timed": {FormatMainTimed, EscapeDefault},
	"json":       {FormatJSON, EscapeJSON},
}

// Preset returns the log_format string and escaping of a preset by name:
// combined, main, main_timed or json.
func Preset(name string) (format string, escape Escape, ok bool) {
	p, ok := presets[name]
	return p.format, p.escape, ok
}

// Presets lists the preset names, sorted.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Compile compiles an nginx log_format string. A format that is exactly a
// preset name is that preset (a log_format without variables would log
// nothing useful); then escape, when left at EscapeDefault, is the preset's.
// A format that is a JSON object is a JSON template: each key is read from
// the JSON line and fills the variable(s) its value names.
func Compile(name, format string, escape Escape) (*Format, error) {
	if p, ok := presets[strings.TrimSpace(format)]; ok {
		format = p.format
		if escape == EscapeDefault {
			escape = p.escape
		}
	}
	if escape > EscapeNone {
		return nil, fmt.Errorf("accesslog: format %q: unknown escape %d", name, escape)
	}
	f := &Format{name: name, source: format, escape: escape}
	for i := range f.slotOf {
		f.slotOf[i] = -1
	}
	var err error
	if t := strings.TrimSpace(format); strings.HasPrefix(t, "{") {
		f.json = true
		err = f.compileJSON(t)
	} else {
		f.text, err = f.compileText(format)
		f.text.combined = err == nil && f.startsAs(f.text, FormatCombined, combinedOps)
		f.text.timed = f.text.combined && len(f.text.ops) == timedOps && len(f.text.tail.b) == 0 &&
			f.startsAs(f.text, FormatMainTimed, timedOps)
		f.text.main = f.text.combined && len(f.text.ops) == mainOps && string(f.text.tail.b) == `"` &&
			f.startsAs(f.text, FormatMain, mainOps)
	}
	if err != nil {
		return nil, fmt.Errorf("accesslog: format %q: %w", name, err)
	}
	f.hasRequest = f.logsAny(kRequest, kMethod, kRequestURI, kURI, kArgs, kProtocol)
	f.hasUpstream = f.logsAny(kUpResponseTime, kUpConnectTime, kUpHeaderTime, kUpStatus, kUpAddr)
	f.hasIdentity = f.logsAny(kHost, kServerName, kHTTPHost, kRequestID, kTraceID, kTraceparent)
	return f, nil
}

func (f *Format) logsAny(kinds ...kind) bool {
	for _, k := range kinds {
		if f.slotOf[k] >= 0 {
			return true
		}
	}
	return false
}

// slot returns the slot of variable name, adding it if new.
func (f *Format) slot(name string) int {
	for i, v := range f.vars {
		if v == name {
			return i
		}
	}
	k := kindOf(name)
	f.vars = append(f.vars, name)
	f.kinds = append(f.kinds, k)
	s := len(f.vars) - 1
	if k != kOther && f.slotOf[k] < 0 {
		f.slotOf[k] = s
	}
	return s
}

// splitFormat cuts a log_format into literals and variable names:
// len(lits) == len(names)+1. Names are lower-cased, as nginx treats
// variable names case-insensitively.
func splitFormat(s string) (lits, names []string, err error) {
	var lit strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			lit.WriteByte(c)
			i++
			continue
		}
		i++
		brace := i < len(s) && s[i] == '{'
		if brace {
			i++
		}
		start := i
		for i < len(s) && isVarByte(s[i]) {
			i++
		}
		if i == start {
			return nil, nil, fmt.Errorf("byte %d: invalid variable name after '$'", start)
		}
		name := strings.ToLower(s[start:i])
		if brace {
			if i >= len(s) || s[i] != '}' {
				return nil, nil, fmt.Errorf("byte %d: missing '}' after ${%s", i, name)
			}
			i++
		}
		lits = append(lits, lit.String())
		lit.Reset()
		names = append(names, name)
	}
	lits = append(lits, lit.String())
	return lits, names, nil
}

func isVarByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func (f *Format) compileText(s string) (textOps, error) {
	lits, names, err := splitFormat(s)
	if err != nil {
		return textOps{}, err
	}
	if len(names) == 0 {
		return textOps{}, errors.New("no variables")
	}
	t := textOps{tail: newLiteral(lits[len(lits)-1])}
	for i, name := range names {
		o := op{lit: newLiteral(lits[i]), slot: f.slot(name)}
		next := lits[i+1]
		last := i == len(names)-1
		for j := i + 1; o.delim == nil && j < len(lits); j++ {
			if lits[j] != "" {
				o.delim = []byte(lits[j])
			}
		}
		quoted := strings.HasSuffix(lits[i], `"`) && strings.HasPrefix(next, `"`)
		k := kindOf(name)
		switch {
		case last && next == "":
			o.scan = scanEnd
		case quoted && f.escape == EscapeDefault:
			o.scan = scanQuote
		case quoted && f.escape == EscapeJSON:
			o.scan = scanQuoteJSON
		case last:
			// Unquoted, or escape=none: a user agent may hold the tail
			// literal itself, the end of the line may not.
			o.scan = scanSuffix
		case next == "" && k.numeric():
			o.scan = scanNumber
		case next == "" && o.delim == nil:
			o.scan = scanEnd
		case k.multi() && next[0] == ' ':
			o.scan = scanMulti
		case k == kTimeLocal:
			o.scan = scanTimeLocal
		case shortVars[name]:
			o.scan = scanShort
		default:
			o.scan = scanDelim
		}
		if i == 0 {
			o.found = len(o.lit.b) == 0
		} else if p := t.ops[i-1]; len(o.lit.b) == 0 || string(p.delim) == string(o.lit.b) && p.scan.findsDelim() {
			o.found = true
		}
		t.ops = append(t.ops, o)
	}
	return t, nil
}

// startsAs reports whether t's first n ops are those of the preset
// format, compiled with default escaping, in slots 0 to n-1: what the
// straight-line readers (parseCombined, parseTimedTail) read.
func (f *Format) startsAs(t textOps, format string, n int) bool {
	if f.escape != EscapeDefault || len(t.ops) < n {
		return false
	}
	c := referenceTexts()[format]
	ct := c.text
	for _, o := range t.ops[n:] {
		if o.slot < n {
			return false // a value read again later is the later one
		}
	}
	for i, o := range ct.ops[:n] {
		p := t.ops[i]
		if p.slot != i || f.vars[i] != c.vars[i] || string(p.lit.b) != string(o.lit.b) || p.found != o.found {
			return false
		}
		// The last value read ends where its scan ends, whatever follows.
		if p.scan != o.scan || i < n-1 && string(p.delim) != string(o.delim) {
			return false
		}
	}
	return true
}

// referenceTexts are the presets startsAs compares a format with, by
// their format string: compiled once, not three times for every Compile.
var referenceTexts = sync.OnceValue(func() map[string]*Format {
	m := make(map[string]*Format)
	for _, s := range []string{FormatCombined, FormatMain, FormatMainTimed} {
		c := &Format{}
		for i := range c.slotOf {
			c.slotOf[i] = -1
		}
		t, err := c.compileText(s)
		if err != nil {
			panic(err)
		}
		c.text = t
		m[s] = c
	}
	return m
})

// shortVars are the variables whose values are nearly always under 8
// bytes ("-", a status, a byte count, a duration): a byte loop finds the
// end of one before a call to the SIMD byte search would have returned.
var shortVars = map[string]bool{
	"remote_user": true, "status": true, "body_bytes_sent": true, "bytes_sent": true,
	"request_length": true, "request_time": true, "connection_requests": true, "pipe": true,
}

// literal is constant text of a format. Most are a few bytes (" - ", "] \"",
// "\" "), so they are also kept as one masked 64-bit word: matching one is
// then a single load and compare instead of a byte loop.
type literal struct {
	b     []byte
	word  uint64
	mask  uint64
	short bool // len(b) <= 8: word and mask are valid
}

func newLiteral(s string) literal {
	l := literal{b: []byte(s)}
	if len(s) <= 8 {
		l.short = true
		for i := len(s) - 1; i >= 0; i-- {
			l.word = l.word<<8 | uint64(s[i])
			l.mask = l.mask<<8 | 0xff
		}
	}
	return l
}

// at reports whether in[pos:] starts with the literal.
func (l *literal) at(in []byte, pos int) bool {
	if l.short && pos >= 0 && pos+8 <= len(in) {
		return binary.LittleEndian.Uint64(in[pos:])&l.mask == l.word
	}
	return hasAt(in, pos, l.b)
}
