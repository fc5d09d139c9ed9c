package loggen

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

const hexUpper = "0123456789ABCDEF"
const hexLower = "0123456789abcdef"

// appendNginxEscaped appends s as nginx writes a variable with the default
// log_format escaping (ngx_http_log_escape): '"', '\' and every byte below
// 0x20 or from 0x7f up become \xHH with upper-case hex. The line stays ASCII,
// which is why a TLS handshake sent to a plain-HTTP port is still a valid line.
func appendNginxEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			dst = append(dst, '\\', 'x', hexUpper[c>>4], hexUpper[c&0xf])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// appendNginxJSONEscaped appends s as nginx writes it with escape=json
// (ngx_escape_json): '"' and '\' get a backslash, bytes below 0x20 become
// \n, \r, \t, \b, \f or \u00XX, and every other byte, 0x7f and up included,
// is copied raw. So nginx's JSON lines are not always valid UTF-8.
func appendNginxJSONEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c >= 0x20:
			dst = append(dst, c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexLower[c>>4], hexLower[c&0xf])
		}
	}
	return dst
}

// jsonSafe[c] is true for bytes that go into a JSON string unchanged.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONString appends b as the body of a JSON string the way Filebeat's
// encoder writes a message: '"', '\' and control bytes escaped, valid UTF-8
// copied, and each byte of invalid UTF-8 replaced by \ufffd (as Go's
// encoding/json does), so the envelope is valid JSON whatever the line holds.
func appendJSONString(dst []byte, b []byte) []byte {
	start := 0
	for i := 0; i < len(b); {
		// Eight bytes at a time while none needs a look: a line is mostly
		// plain ASCII between a handful of quotes.
		if i+8 <= len(b) {
			if m := jsonAttention(binary.LittleEndian.Uint64(b[i:])); m == 0 {
				i += 8
				continue
			} else {
				// The lowest flag is exact; higher ones may be false alarms,
				// which the byte loop below clears.
				i += bits.TrailingZeros64(m) >> 3
			}
		}
		c := b[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c >= 0x80 {
			r, size := utf8.DecodeRune(b[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, b[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, b[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexLower[c>>4], hexLower[c&0xf])
		}
		i++
		start = i
	}
	return append(dst, b[start:]...)
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// jsonAttention flags (high bit per byte) the bytes of x that are '"', '\',
// below 0x20 or from 0x80 up; any flag but the lowest may be a false alarm.
func jsonAttention(x uint64) uint64 {
	q := x ^ (lsb * '"')
	bs := x ^ (lsb * '\\')
	return (x | (x - lsb*0x20) | (q-lsb)&^q | (bs-lsb)&^bs) & msb
}

// appendMillis appends ms as nginx prints a time in seconds with
// millisecond resolution: "0.012", "60.001".
func appendMillis(dst []byte, ms int64) []byte {
	sec, frac := ms/1000, ms%1000
	dst = appendUint(dst, uint64(sec))
	return append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// appendUint is strconv.AppendUint without the generality.
func appendUint(dst []byte, v uint64) []byte {
	var b [20]byte
	i := len(b)
	for v >= 10 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	b[i] = byte('0' + v)
	return append(dst, b[i:]...)
}

// hexPairs holds the two lower-case hex digits of every byte.
const hexPairs = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" +
	"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f" +
	"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f" +
	"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f" +
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f" +
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf" +
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf" +
	"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"

// appendHex64 appends v as 16 lower-case hex digits.
func appendHex64(dst []byte, v uint64) []byte {
	var b [16]byte
	for i := 14; i >= 0; i -= 2 {
		p := (v & 0xff) * 2
		b[i], b[i+1] = hexPairs[p], hexPairs[p+1]
		v >>= 8
	}
	return append(dst, b[:]...)
}
