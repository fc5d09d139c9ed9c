package accesslog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// A small JSON object scanner: it finds keys and the raw text of values and
// never builds anything, so a JSON access line or a Filebeat envelope is read
// without allocation. Values stay escaped; Unescape decodes them on demand.

// maxJSONDepth bounds recursion on hostile input.
const maxJSONDepth = 32

// skipWS returns the index of the first byte at or after b[i] that is not
// JSON whitespace. Shippers write none between tokens, so the first test
// nearly always answers, inlined where it is called.
func skipWS(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' {
		return i
	}
	return skipWSLoop(b, i)
}

func skipWSLoop(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// jsonStringEnd finds the '"' closing a JSON string whose text starts at
// in[pos]; -1 when there is none. Keys and most values are short: their
// first 40 bytes are read 8 at a time, looking for '"' and '\\' in a word
// at once. A long string, or one with an escape there, is searched with
// IndexByte, and a quote found that way is escaped when an odd number of
// backslashes precede it (decoding the escape in the word loop cost more
// than it saved).
func jsonStringEnd(in []byte, pos int) int {
	start := pos
	for end := min(pos+swarBytes, len(in)); pos+8 <= end; pos += 8 {
		if m := quoteOrBackslash(binary.LittleEndian.Uint64(in[pos : pos+8])); m != 0 {
			k := pos + bits.TrailingZeros64(m)>>3
			if in[k] == '"' {
				return k
			}
			break // an escape: the search below handles it
		}
	}
	for pos < len(in) {
		i := bytes.IndexByte(in[pos:], '"')
		if i < 0 {
			return -1
		}
		q := pos + i
		n := 0
		for j := q - 1; j >= start && in[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return q
		}
		pos = q + 1
	}
	return -1
}

// wordQuote is the closing quote of the string whose text starts at b[i]
// when it is within the string's first 8 bytes (most keys, short values),
// else -1: inlined before a call to jsonStringEnd, it saves the call.
func wordQuote(b []byte, i int) int {
	if len(b)-i < 8 {
		return -1
	}
	if m := quoteOrBackslash(binary.LittleEndian.Uint64(b[i:])); m != 0 {
		if k := i + bits.TrailingZeros64(m)>>3; b[k] == '"' {
			return k
		}
	}
	return -1
}

// quoteOrBackslash has the high bit set in the lowest byte of w that is
// '"' or '\\' (and maybe in higher ones, not to be read); 0 when there is
// none. It is the classic "has a zero byte" test, (v-0x01..)&^v&0x80..,
// on w XOR '"' and on w XOR '\\' at once: a byte of either has its high
// bit set only when w's has, so one &^w stands for both &^v.
func quoteOrBackslash(w uint64) uint64 {
	x, y := w^(lo8*'"'), w^(lo8*'\\')
	return ((x - lo8) | (y - lo8)) &^ w & hi8
}

// swarBytes is how far the word loop reads: 40 takes a 36-byte UUID (the
// agent's ids in an envelope) without the byte search; 48 did no better on
// envelopes and worse on JSON lines, 8 cost 5% more on JSON lines.
const swarBytes = 40

const lo8, hi8 = 0x0101010101010101, 0x8080808080808080

// jsonStringAt reads the string starting with the quote at b[i]; it returns
// the bounds of its (still escaped) text and whether it is closed.
func jsonStringAt(b []byte, i int) (start, end int, ok bool) {
	start = i + 1
	end = jsonStringEnd(b, start)
	return start, end, end >= 0
}

// jsonScalarEnd finds the end of a number, true, false or null.
func jsonScalarEnd(b []byte, i int) int {
	for i < len(b) && !scalarEnds[b[i]] {
		i++
	}
	return i
}

// scalarEnds holds the bytes that end a number, true, false or null: one
// load a byte instead of eleven compares.
var scalarEnds = [256]bool{',': true, '}': true, ']': true, ' ': true, '\t': true, '\n': true, '\r': true, ':': true, '"': true, '{': true, '[': true}

// jsonSkip returns the index after the value starting at b[i], or -1.
func jsonSkip(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		_, end, ok := jsonStringAt(b, i)
		if !ok {
			return -1
		}
		return end + 1
	case '{', '[':
		if depth >= maxJSONDepth {
			return -1
		}
		closer := byte('}')
		if b[i] == '[' {
			closer = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1
		}
		for {
			if closer == '}' {
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				end := wordQuote(b, i+1)
				if end < 0 {
					if end = jsonStringEnd(b, i+1); end < 0 {
						return -1
					}
				}
				// "key":value without whitespace in one test, as in walk.
				if i = end + 1; i+1 < len(b) && b[i] == ':' && b[i+1] > ' ' {
					i++
				} else {
					i = skipWS(b, i)
					if i >= len(b) || b[i] != ':' {
						return -1
					}
					i = skipWS(b, i+1)
				}
			}
			if i < len(b) && b[i] == '"' {
				// A string, most members: without the recursive call.
				end := wordQuote(b, i+1)
				if end < 0 {
					if end = jsonStringEnd(b, i+1); end < 0 {
						return -1
					}
				}
				i = end + 1
			} else if i = jsonSkip(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return -1
			}
			if b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if b[i] == closer {
				return i + 1
			}
			return -1
		}
	}
	end := jsonScalarEnd(b, i)
	if end == i {
		return -1
	}
	return end
}

var jsonNull = []byte("null")

// parseJSON reads a JSON access line: every key the format knows fills its
// slot, wherever it stands in the object.
func (f *Format) parseJSON(line []byte, r *Record) error {
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return r.fail(ReasonBadJSON, "", line, i, "a JSON object", nil)
	}
	hint := 0
	end, err := f.walkJSON(line, i, r, 0, &hint)
	if err != nil {
		return err
	}
	if i = skipWS(line, end); i != len(line) {
		return r.fail(ReasonTrailingData, "", line, i, "end of line", nil)
	}
	return nil
}

// walkJSON reads the object at line[i]. Keys of nested objects are matched
// in dotted form ("upstream.addr"), built in r.path; top-level keys, the
// common case, are matched in place.
func (f *Format) walkJSON(line []byte, i int, r *Record, depth int, hint *int) (int, error) {
	base := len(r.path)
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(line) || line[i] != '"' {
			return 0, r.fail(ReasonBadJSON, "", line, i, "a key", nil)
		}
		ks, ke, ok := jsonStringAt(line, i)
		if !ok {
			return 0, r.fail(ReasonBadJSON, "", line, i, "a closed string", nil)
		}
		key := line[ks:ke]
		i = skipWS(line, ke+1)
		if i >= len(line) || line[i] != ':' {
			return 0, r.fail(ReasonBadJSON, "", line, i, "':'", nil)
		}
		i = skipWS(line, i+1)
		if i >= len(line) {
			return 0, r.fail(ReasonBadJSON, "", line, i, "a value", nil)
		}
		full := key
		if depth > 0 {
			r.path = append(append(r.path[:base], '.'), key...)
			full = r.path
		}
		switch c := line[i]; {
		case c == '{' && depth < maxJSONDepth && f.jsonPrefix(full):
			if depth == 0 {
				r.path = append(r.path[:0], key...)
			}
			end, err := f.walkJSON(line, i, r, depth+1, hint)
			if err != nil {
				return 0, err
			}
			i = end
		case c == '{' || c == '[':
			end := jsonSkip(line, i, depth)
			if end < 0 {
				return 0, r.fail(ReasonBadJSON, "", line, i, "a JSON value", nil)
			}
			i = end
		case c == '"':
			vs, ve, ok := jsonStringAt(line, i)
			if !ok {
				return 0, r.fail(ReasonBadJSON, "", line, i, "a closed string", nil)
			}
			if err := f.setJSON(r, full, line[vs:ve], vs, hint); err != nil {
				return 0, err
			}
			i = ve + 1
		default:
			end, err := f.scalarJSON(line, i, r, full, hint)
			if err != nil {
				return 0, err
			}
			i = end
		}
		r.path = r.path[:base]
		i = skipWS(line, i)
		if i >= len(line) {
			return 0, r.fail(ReasonBadJSON, "", line, i, "',' or '}'", nil)
		}
		switch line[i] {
		case ',':
			i = skipWS(line, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, r.fail(ReasonBadJSON, "", line, i, "',' or '}'", nil)
		}
	}
}

// scalarJSON sets key from the number, boolean or null at line[i] and
// returns its end.
func (f *Format) scalarJSON(line []byte, i int, r *Record, key []byte, hint *int) (int, error) {
	end := jsonScalarEnd(line, i)
	if end == i {
		return 0, r.fail(ReasonBadJSON, "", line, i, "a JSON value", nil)
	}
	// null is "not logged"; numbers and booleans are their text.
	if v := line[i:end]; !bytes.Equal(v, jsonNull) {
		if err := f.setJSON(r, key, v, i, hint); err != nil {
			return 0, err
		}
	}
	return end, nil
}

// jsonPrefix reports whether some known key lies inside the object at key.
func (f *Format) jsonPrefix(key []byte) bool {
	for _, k := range f.jkeys {
		if len(k.key) > len(key) && k.key[len(key)] == '.' && k.key[:len(key)] == string(key) {
			return true
		}
	}
	return false
}

// setJSON stores a value under its key's slot. Lines written from one
// template have their keys in template order, so the key after the last
// match is tried first and the scan over all keys is the exception.
func (f *Format) setJSON(r *Record, key, val []byte, off int, hint *int) error {
	n := len(f.jkeys)
	idx := -1
	if h := *hint; h < n && f.jkeys[h].key == string(key) {
		idx = h
	} else {
		for j := range f.jkeys {
			if f.jkeys[j].key == string(key) {
				idx = j
				break
			}
		}
	}
	if idx < 0 {
		return nil
	}
	*hint = idx + 1
	k := &f.jkeys[idx]
	if k.sub != nil {
		return f.parseOps(k.sub, val, off, r)
	}
	r.vars[k.slot] = val
	return nil
}

// compileJSON compiles a JSON template: '{"status":"$status",...}'. A value
// that is one variable maps its key to that variable; a value mixing text
// and variables ("$request_method $uri") becomes a small text format read
// from the key's value. Keys of nested objects are flattened with dots.
func (f *Format) compileJSON(tmpl string) error {
	end, err := f.compileJSONObject(tmpl, 0, "", 0)
	if err != nil {
		return err
	}
	if i := skipWS([]byte(tmpl), end); i != len(tmpl) {
		return fmt.Errorf("byte %d: data after the JSON template", i)
	}
	for _, d := range defaultJSONKeys {
		if !f.hasJSONKey(d.key) {
			f.jkeys = append(f.jkeys, jsonKey{key: d.key, slot: f.slot(d.variable)})
		}
	}
	return nil
}

func (f *Format) hasJSONKey(key string) bool {
	for _, k := range f.jkeys {
		if k.key == key {
			return true
		}
	}
	return false
}

func (f *Format) compileJSONObject(s string, i int, prefix string, depth int) (int, error) {
	b := []byte(s)
	bad := func(what string) (int, error) { return 0, fmt.Errorf("byte %d: JSON template: want %s", i, what) }
	if depth > maxJSONDepth {
		return bad("less nesting")
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '{' {
		return bad("'{'")
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return bad("a key")
		}
		ks, ke, ok := jsonStringAt(b, i)
		if !ok {
			return bad("a closed string")
		}
		key := prefix + s[ks:ke]
		i = skipWS(b, ke+1)
		if i >= len(b) || b[i] != ':' {
			return bad("':'")
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return bad("a value")
		}
		switch b[i] {
		case '{':
			end, err := f.compileJSONObject(s, i, key+".", depth+1)
			if err != nil {
				return 0, err
			}
			i = end
		case '"':
			vs, ve, ok := jsonStringAt(b, i)
			if !ok {
				return bad("a closed string")
			}
			if err := f.addJSONKey(key, s[vs:ve]); err != nil {
				return 0, fmt.Errorf("key %q: %w", key, err)
			}
			i = ve + 1
		case '$':
			// An unquoted variable, as in "status":$status, which nginx
			// allows and which logs a JSON number.
			end := unquotedVarEnd(s, i)
			if end < 0 {
				return bad("'}'")
			}
			if err := f.addJSONKey(key, s[i:end]); err != nil {
				return 0, fmt.Errorf("key %q: %w", key, err)
			}
			i = end
		default:
			end := jsonSkip(b, i, depth)
			if end < 0 {
				return bad("a JSON value")
			}
			i = end // a constant: nothing to read
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return bad("',' or '}'")
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return bad("',' or '}'")
		}
	}
}

// unquotedVarEnd returns the end of the $name or ${name} at s[i], or -1
// when a ${ is not closed.
func unquotedVarEnd(s string, i int) int {
	end := i + 1
	if end < len(s) && s[end] == '{' {
		end = strings.IndexByte(s[i:], '}')
		if end < 0 {
			return -1
		}
		return end + i + 1
	}
	for end < len(s) && isVarByte(s[end]) {
		end++
	}
	return end
}

func (f *Format) addJSONKey(key, value string) error {
	if f.hasJSONKey(key) {
		return errors.New("duplicate key")
	}
	lits, names, err := splitFormat(value)
	if err != nil {
		return err
	}
	switch {
	case len(names) == 0:
		return nil // constant text
	case len(names) == 1 && lits[0] == "" && lits[1] == "":
		f.jkeys = append(f.jkeys, jsonKey{key: key, slot: f.slot(names[0])})
		return nil
	}
	t, err := f.compileText(value)
	if err != nil {
		return err
	}
	f.jkeys = append(f.jkeys, jsonKey{key: key, slot: -1, sub: &t})
	return nil
}
