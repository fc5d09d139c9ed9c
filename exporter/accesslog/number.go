package accesslog

import (
	"encoding/binary"
	"math"
)

// isDash reports nginx's "no value": a variable that is not set is logged
// as "-".
func isDash(b []byte) bool { return len(b) == 1 && b[0] == '-' }

// dashless maps nginx's "-" (and an empty value) to nil.
func dashless(b []byte) []byte {
	if len(b) == 0 || isDash(b) {
		return nil
	}
	return b
}

// parseStatus reads a 3-digit HTTP status. nginx logs 000 for requests it
// never answered (e.g. HTTP/2 streams reset early), so any 3 digits pass.
func parseStatus(b []byte) (int, bool) {
	if len(b) != 3 {
		return 0, false
	}
	// A byte below '0' wraps past 9.
	d0, d1, d2 := b[0]-'0', b[1]-'0', b[2]-'0'
	if d0 > 9 || d1 > 9 || d2 > 9 {
		return 0, false
	}
	return int(d0)*100 + int(d1)*10 + int(d2), true
}

// parseCount reads a byte count; "-" is -1.
func parseCount(b []byte) (int64, bool) {
	if isDash(b) {
		return -1, true
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// shortNanos reads the shape of nearly every duration nginx writes,
// "%d.%03d" seconds under ten, as nanoseconds; ok is false for any other
// text, which the general readers then take.
func shortNanos(b []byte) (ns int64, ok bool) {
	if len(b) != 5 || b[1] != '.' {
		return 0, false
	}
	d0, d1, d2, d3 := b[0]-'0', b[2]-'0', b[3]-'0', b[4]-'0'
	if d0 > 9 || d1 > 9 || d2 > 9 || d3 > 9 {
		return 0, false
	}
	return int64((((int(d0)*10+int(d1))*10+int(d2))*10 + int(d3)) * 1e6), true
}

// parseNanos reads a plain decimal number of seconds ("0.123", "12", "5.")
// as integer nanoseconds. Summing integers keeps "0.010, 0.020" exactly
// 0.030, which float addition would not; digits past the ninth decimal are
// dropped.
func parseNanos(b []byte) (int64, bool) {
	ns, i, ok := nanosPrefix(b)
	return ns, ok && i == len(b)
}

// nanosPrefix is parseNanos for the number b starts with, which ends at
// b[i]: an upstream value is read in the pass that finds its end.
func nanosPrefix(b []byte) (ns int64, i int, ok bool) {
	// nginx writes its durations as "%d.%03d" seconds, nearly all under
	// ten: that shape is read at once.
	if len(b) >= 5 && b[1] == '.' {
		d0, d1, d2, d3 := b[0]-'0', b[2]-'0', b[3]-'0', b[4]-'0'
		if d0 <= 9 && d1 <= 9 && d2 <= 9 && d3 <= 9 && (len(b) == 5 || b[5]-'0' > 9) {
			return int64(d0)*1e9 + int64(d1)*1e8 + int64(d2)*1e7 + int64(d3)*1e6, 5, true
		}
	}
	var sec int64
	for ; i < len(b); i++ {
		d := b[i] - '0'
		if d > 9 {
			break
		}
		if i >= 10 && sec > maxSeconds/10 {
			return 0, i, false
		}
		sec = sec*10 + int64(d)
	}
	got := i > 0
	var frac int64
	n := 0 // decimals kept in frac
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for ; i < len(b); i++ {
			d := b[i] - '0'
			if d > 9 {
				break
			}
			if n < 9 {
				frac = frac*10 + int64(d)
				n++
			}
		}
		got = got || i > start
	}
	if !got || sec > maxSeconds {
		return 0, i, false
	}
	return sec*1e9 + frac*fracScale[n], i, true
}

// fracScale[n] turns n decimals into nanoseconds.
var fracScale = [10]int64{1e9, 1e8, 1e7, 1e6, 1e5, 1e4, 1e3, 1e2, 1e1, 1}

// maxSeconds keeps sec*1e9 within int64 (year 2262 for $msec).
const maxSeconds int64 = math.MaxInt64/1_000_000_000 - 1

// seconds converts nanoseconds to float seconds; dividing once rounds
// correctly, so 60000000 ns is exactly the float64 nearest 0.06.
func seconds(ns int64) float64 { return float64(ns) / 1e9 }

// parseSeconds reads a single duration; "-" is -1.
func parseSeconds(b []byte) (float64, bool) {
	if ns, ok := shortNanos(b); ok {
		return seconds(ns), true
	}
	if isDash(b) {
		return -1, true
	}
	ns, ok := parseNanos(b)
	if !ok {
		return 0, false
	}
	return seconds(ns), true
}

// nginx's multi-value upstream syntax: "a, b" are tries within one
// upstream group, "a : b" is a pass to another group (X-Accel-Redirect,
// error_page). A value ends at ',' or ' '; upstreamSep gives where the
// value after the separator at b[i] starts.
func upstreamSep(b []byte, i int) int {
	if i < len(b) && b[i] == ',' {
		// ", " between tries.
		i++
		if i < len(b) && b[i] == ' ' {
			i++
		}
		return i
	}
	// " : " between groups; any other space run separates too.
	for i < len(b) && (b[i] == ' ' || b[i] == ':') {
		i++
	}
	return i
}

// upstreamSum reads a multi-value duration: the sum of the numeric values, or
// -1 when none is numeric ("-" is a try that never got that far). n is the
// number of values.
func upstreamSum(b []byte) (sum float64, n int, ok bool) {
	if isDash(b) {
		return -1, 1, true // no upstream: the common case
	}
	if ns, ok := shortNanos(b); ok {
		return seconds(ns), 1, true // one try
	}
	var total int64
	numeric := false
	for len(b) > 0 {
		n++
		ns, i, good := nanosPrefix(b)
		switch {
		case i < len(b) && b[i] != ',' && b[i] != ' ':
			// Not a number: a "-" (skipped), or not a duration.
			if i != 0 || b[0] != '-' || len(b) > 1 && b[1] != ',' && b[1] != ' ' {
				return 0, n, false
			}
			i = 1
		case i == 0:
			// An empty value, skipped like "-".
		case !good || total > math.MaxInt64-ns:
			return 0, n, false
		default:
			total += ns
			numeric = true
		}
		b = b[upstreamSep(b, i):]
	}
	if !numeric {
		return -1, n, true
	}
	return seconds(total), n, true
}

// Words of eight bytes: a word w holds a zero byte when (w-ones)&^w&highs
// is not zero, and its lowest set bit is in the first zero byte. w^(ones*c)
// has a zero byte where w has the byte c.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasUpstreamSep reports whether b holds a ',' or a ' ', where values are
// split; an address is looked at eight bytes at a time.
func hasUpstreamSep(b []byte) bool {
	if len(b) < 8 {
		for _, c := range b {
			if c == ',' || c == ' ' {
				return true
			}
		}
		return false
	}
	for i := 0; ; i += 8 {
		i = min(i, len(b)-8) // the last word may overlap the one before
		w := binary.LittleEndian.Uint64(b[i:])
		comma, space := w^(ones*','), w^(ones*' ')
		if ((comma-ones)&^comma|(space-ones)&^space)&highs != 0 {
			return true
		}
		if i == len(b)-8 {
			return false
		}
	}
}

// upstreamLast returns the last value of a multi-value variable and the
// number of values; a lone "-" counts as no value.
func upstreamLast(b []byte) (last []byte, n int) {
	if len(b) == 0 || isDash(b) {
		return nil, 0
	}
	if !hasUpstreamSep(b) {
		return b, 1 // one try: the common case
	}
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != ',' && b[i] != ' ' {
			i++
		}
		n++
		last = b[:i]
		b = b[upstreamSep(b, i):]
	}
	return last, n
}
