package accesslog

import "math"

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
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
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

// parseNanos reads a plain decimal number of seconds ("0.123", "12", "5.")
// as integer nanoseconds. Summing integers keeps "0.010, 0.020" exactly
// 0.030, which float addition would not; digits past the ninth decimal are
// dropped.
func parseNanos(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var sec, frac int64
	i, digits := 0, 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if digits >= 10 && sec > maxSeconds/10 {
			return 0, false
		}
		sec = sec*10 + int64(b[i]-'0')
		digits++
	}
	scale := int64(1e9)
	if i < len(b) && b[i] == '.' {
		i++
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if scale > 1 {
				scale /= 10
				frac += int64(b[i]-'0') * scale
			}
			digits++
		}
	}
	if i != len(b) || digits == 0 || sec > maxSeconds {
		return 0, false
	}
	return sec*1e9 + frac, true
}

// maxSeconds keeps sec*1e9 within int64 (year 2262 for $msec).
const maxSeconds int64 = math.MaxInt64/1_000_000_000 - 1

// seconds converts nanoseconds to float seconds; dividing once rounds
// correctly, so 60000000 ns is exactly the float64 nearest 0.06.
func seconds(ns int64) float64 { return float64(ns) / 1e9 }

// parseSeconds reads a single duration; "-" is -1.
func parseSeconds(b []byte) (float64, bool) {
	if isDash(b) {
		return -1, true
	}
	ns, ok := parseNanos(b)
	if !ok {
		return 0, false
	}
	return seconds(ns), true
}

// nextUpstream splits one value off nginx's multi-value upstream syntax:
// "a, b" are tries within one upstream group, "a : b" is a pass to another
// group (X-Accel-Redirect, error_page). It returns the value and the rest
// after the separator; ok is false when b is exhausted.
func nextUpstream(b []byte) (val, rest []byte, ok bool) {
	if len(b) == 0 {
		return nil, nil, false
	}
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ',':
			// ", " between tries.
			j := i + 1
			if j < len(b) && b[j] == ' ' {
				j++
			}
			return b[:i], b[j:], true
		case ' ':
			// " : " between groups; any other space run separates too.
			j := i
			for j < len(b) && (b[j] == ' ' || b[j] == ':') {
				j++
			}
			return b[:i], b[j:], true
		}
	}
	return b, nil, true
}

// upstreamSum reads a multi-value duration: the sum of the numeric values, or
// -1 when none is numeric ("-" is a try that never got that far). n is the
// number of values.
func upstreamSum(b []byte) (sum float64, n int, ok bool) {
	if isDash(b) {
		return -1, 1, true // no upstream: the common case, without the split
	}
	var total int64
	numeric := false
	for v, rest, more := nextUpstream(b); more; v, rest, more = nextUpstream(rest) {
		n++
		if isDash(v) || len(v) == 0 {
			continue
		}
		ns, good := parseNanos(v)
		if !good {
			return 0, n, false
		}
		if total > math.MaxInt64-ns {
			return 0, n, false
		}
		total += ns
		numeric = true
	}
	if !numeric {
		return -1, n, true
	}
	return seconds(total), n, true
}

// upstreamLast returns the last value of a multi-value variable and the
// number of values; a lone "-" counts as no value.
func upstreamLast(b []byte) (last []byte, n int) {
	if len(b) == 0 || isDash(b) {
		return nil, 0
	}
	for v, rest, more := nextUpstream(b); more; v, rest, more = nextUpstream(rest) {
		n++
		last = v
	}
	return last, n
}
