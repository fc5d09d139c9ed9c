package accesslog

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// Escape is the escape= parameter of an nginx log_format: how nginx wrote
// bytes that could break the line apart.
type Escape uint8

const (
	// EscapeDefault is nginx's default: '"', '\' and bytes outside
	// printable ASCII (< 0x20, >= 0x7f) are written as \xHH.
	EscapeDefault Escape = iota
	// EscapeJSON is escape=json: JSON string escapes ('\"', '\\', '\n',
	// '\u00XX' for other control bytes); bytes >= 0x80 are written raw.
	EscapeJSON
	// EscapeNone is escape=none: values are written as they are, so a
	// quoted value may itself contain '"'.
	EscapeNone
)

// String is the name nginx uses for the mode in escape=.
func (e Escape) String() string {
	switch e {
	case EscapeDefault:
		return "default"
	case EscapeJSON:
		return "json"
	case EscapeNone:
		return "none"
	}
	return fmt.Sprintf("Escape(%d)", uint8(e))
}

// ParseEscape reads an escape= value as written in nginx.conf; "" is the
// default mode.
func ParseEscape(s string) (Escape, error) {
	switch s {
	case "", "default":
		return EscapeDefault, nil
	case "json":
		return EscapeJSON, nil
	case "none":
		return EscapeNone, nil
	}
	return 0, fmt.Errorf("accesslog: unknown escape %q (want default, json or none)", s)
}

// Unescape appends the text src stands for to dst and returns the extended
// slice. src is a value as nginx wrote it with escaping e. Sequences that are
// not valid escapes are copied unchanged, so Unescape never fails and never
// loses bytes a human might want to see.
func Unescape(dst, src []byte, e Escape) []byte {
	switch e {
	case EscapeDefault:
		return unescapeDefault(dst, src)
	case EscapeJSON:
		return unescapeJSON(dst, src)
	}
	return append(dst, src...)
}

func unescapeDefault(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		c := src[i]
		if c == '\\' && i+3 < len(src) && src[i+1] == 'x' {
			hi, ok1 := unhex(src[i+2])
			lo, ok2 := unhex(src[i+3])
			if ok1 && ok2 {
				dst = append(dst, hi<<4|lo)
				i += 4
				continue
			}
		}
		// Copy the run up to the next backslash in one append.
		j := i + 1
		for j < len(src) && src[j] != '\\' {
			j++
		}
		dst = append(dst, src[i:j]...)
		i = j
	}
	return dst
}

func unescapeJSON(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		// Copy the run up to the next backslash in one append.
		j := bytes.IndexByte(src[i:], '\\')
		if j < 0 {
			return append(dst, src[i:]...)
		}
		dst = append(dst, src[i:i+j]...)
		dst, i = unescapeJSONAt(dst, src, i+j)
	}
	return dst
}

// unescapeJSONAt decodes the escape whose backslash is src[i], appending its
// text to dst, and returns the index after it. A backslash that starts no
// valid escape is copied as it is, and the byte after it is left for the
// caller: it is never '"' nor '\\', so a caller looking for the end of a
// JSON string never sees an escaped quote as the end.
func unescapeJSONAt(dst, src []byte, i int) ([]byte, int) {
	if i+1 >= len(src) {
		return append(dst, '\\'), i + 1
	}
	switch src[i+1] {
	case '"', '\\', '/':
		return append(dst, src[i+1]), i + 2
	case 'b':
		return append(dst, '\b'), i + 2
	case 'f':
		return append(dst, '\f'), i + 2
	case 'n':
		return append(dst, '\n'), i + 2
	case 'r':
		return append(dst, '\r'), i + 2
	case 't':
		return append(dst, '\t'), i + 2
	case 'u':
		r, ok := hex4(src, i+2)
		if !ok {
			return append(dst, '\\'), i + 1
		}
		n := 6
		if utf16IsSurrogate(r) {
			r2, ok2 := rune(0), false
			if i+7 < len(src) && src[i+6] == '\\' && src[i+7] == 'u' {
				r2, ok2 = hex4(src, i+8)
			}
			if ok2 && r >= 0xd800 && r < 0xdc00 && r2 >= 0xdc00 && r2 < 0xe000 {
				r = (r-0xd800)<<10 | (r2 - 0xdc00) + 0x10000
				n = 12
			} else {
				r = utf8.RuneError
			}
		}
		return utf8.AppendRune(dst, r), i + n
	}
	return append(dst, '\\'), i + 1
}

// scanJSONString finds the end of the JSON string whose text starts at
// b[start] and decodes it in the same pass: text aliases b when the string
// holds no escape, else it is appended to dst (copied reports which). end is
// the index of the closing quote; ok is false when there is none.
//
// The escapes of an nginx line in a message are nearly all \" (around
// the request, referer and user agent): the quote search that finds the
// end finds them too, and the runs between them are copied as it goes.
// One count of the backslashes then tells whether there was any other
// escape (\\x.. for the bytes nginx escapes itself); if so, the copy is
// decoded again, in place. That is sound because the copy has dropped
// only the backslash of each escaped quote, so an escape's backslash is
// followed there by the same bytes as in b.
func scanJSONString(b []byte, start int, dst []byte) (end int, text []byte, copied, ok bool) {
	d0, n := len(dst), 0 // n: escaped quotes, whose backslash is dropped
	from, i := start, start
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return 0, nil, false, false
		}
		q += i
		if q == i || b[q-1] != '\\' {
			end = q
			break
		}
		j := q - 2
		for j >= i && b[j] == '\\' {
			j--
		}
		if (q-1-j)%2 == 0 { // an even run of backslashes: they are \\ escapes
			end = q
			break
		}
		dst = append(dst, b[from:q-1]...)
		from, i = q, q+1 // the quote starts the next run
		n++
	}
	s := b[start:end]
	if n == 0 {
		if bytes.IndexByte(s, '\\') < 0 {
			return end, s, false, true
		}
		return end, unescapeJSON(dst, s), true, true
	}
	dst = append(dst, b[from:end]...)
	if bytes.Count(s, backslash) != n {
		// Never longer than the copy, the text is written over it.
		t := dst[d0:]
		dst = append(dst[:d0], unescapeJSON(t[:0], t)...)
	}
	return end, dst, true, true
}

var backslash = []byte{'\\'}

func utf16IsSurrogate(r rune) bool { return r >= 0xd800 && r < 0xe000 }

// hex4 reads the four hex digits of a \u escape starting at src[i].
func hex4(src []byte, i int) (rune, bool) {
	if i+4 > len(src) {
		return 0, false
	}
	var r rune
	for _, c := range src[i : i+4] {
		v, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// needsUnescape reports whether a raw value holds any escape sequence; most
// do not, and then the raw bytes are the text and nothing is copied.
func needsUnescape(b []byte, e Escape) bool {
	if e == EscapeNone {
		return false
	}
	return bytes.IndexByte(b, '\\') >= 0
}
