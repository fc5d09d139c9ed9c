package accesslog

import (
	"encoding/binary"
	"sync"
	"time"
)

// Times are parsed by hand: time.Parse costs a few hundred nanoseconds and,
// with a numeric zone, allocates a *time.Location per line.

// zones holds a fixed *time.Location for every quarter-hour UTC offset from
// -14:00 to +14:00, which covers every zone in use. Built once and never
// written again, it is shared safely by all goroutines. An offset off that
// grid costs one time.FixedZone allocation per line.
var zones = sync.OnceValue(func() []*time.Location {
	locs := make([]*time.Location, 14*4*2+1)
	for i := range locs {
		off := (i - 14*4) * 15 * 60
		if off == 0 {
			locs[i] = time.UTC
			continue
		}
		locs[i] = time.FixedZone("", off)
	}
	return locs
})

func zoneFor(off int) *time.Location {
	if off == 0 {
		// Every @timestamp (Filebeat writes UTC): the table's entry, without
		// the call and the division.
		return time.UTC
	}
	if off%(15*60) == 0 && off >= -14*3600 && off <= 14*3600 {
		return zones()[off/(15*60)+14*4]
	}
	return time.FixedZone("", off)
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (Howard Hinnant's algorithm); it needs no
// tables and no time.Date, which would consult the location.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

func validDate(y, m, d, hh, mm, ss int) bool {
	if m < 1 || m > 12 || d < 1 || d > daysIn[m] || hh > 23 || mm > 59 || ss > 59 {
		return false
	}
	if m == 2 && d == 29 && !(y%4 == 0 && (y%100 != 0 || y%400 == 0)) {
		return false
	}
	return true
}

// num reads n ASCII digits at b[i:].
func num(b []byte, i, n int) (int, bool) {
	if i+n > len(b) {
		return 0, false
	}
	v := 0
	for _, c := range b[i : i+n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func monthIndex(b []byte) int {
	// Month names as nginx writes them in $time_local (C locale, always).
	switch string(b) {
	case "Jan":
		return 1
	case "Feb":
		return 2
	case "Mar":
		return 3
	case "Apr":
		return 4
	case "May":
		return 5
	case "Jun":
		return 6
	case "Jul":
		return 7
	case "Aug":
		return 8
	case "Sep":
		return 9
	case "Oct":
		return 10
	case "Nov":
		return 11
	case "Dec":
		return 12
	}
	return 0
}

// The window of times a line may carry. Past 2262 a time no longer fits in
// int64 nanoseconds, where Loki timestamps and time.Time.UnixNano wrap (a
// line dated 9999 went to the log store stamped 1816); a time outside the
// window fails with ReasonBadTime instead. 1970 is where $msec starts; 2200
// leaves room for any real clock.
const (
	minUnix = 0              // 1970-01-01T00:00:00Z
	maxUnix = 7258118400 - 1 // 2199-12-31T23:59:59Z
	maxNano = maxUnix*1e9 + 999_999_999
)

func inWindow(sec int64) bool { return sec >= minUnix && sec <= maxUnix }

// civil is the instant y-mo-d hh:mm:ss.nsec at UTC offset off, reported not
// ok outside the window.
func civil(y, mo, d, hh, mm, ss, nsec, off int) (time.Time, bool) {
	return civilDays(daysFromCivil(y, mo, d), hh, mm, ss, nsec, off)
}

// civilDays is civil for a date already counted in days since the epoch.
func civilDays(days int64, hh, mm, ss, nsec, off int) (time.Time, bool) {
	sec := days*86400 + int64(hh*3600+mm*60+ss) - int64(off)
	if !inWindow(sec) {
		return time.Time{}, false
	}
	return time.Unix(sec, int64(nsec)).In(zoneFor(off)), true
}

// parseTimeLocal reads $time_local: "10/Oct/2025:13:55:36 +0200".
func parseTimeLocal(b []byte) (time.Time, bool) {
	if len(b) != 26 || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' || b[17] != ':' || b[20] != ' ' {
		return time.Time{}, false
	}
	d, ok1 := num(b, 0, 2)
	mo := monthIndex(b[3:6])
	y, ok2 := num(b, 7, 4)
	hh, ok3 := num(b, 12, 2)
	mm, ok4 := num(b, 15, 2)
	ss, ok5 := num(b, 18, 2)
	off, ok6 := zoneOffset(b[21:], false)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || !validDate(y, mo, d, hh, mm, ss) {
		return time.Time{}, false
	}
	return civil(y, mo, d, hh, mm, ss, 0, off)
}

// zoneOffset reads "+0200" (colon false) or "+02:00" (colon true) in seconds.
func zoneOffset(b []byte, colon bool) (int, bool) {
	want := 5
	if colon {
		want = 6
	}
	if len(b) != want || (b[0] != '+' && b[0] != '-') {
		return 0, false
	}
	h, ok1 := num(b, 1, 2)
	mi := 3
	if colon {
		if b[3] != ':' {
			return 0, false
		}
		mi = 4
	}
	m, ok2 := num(b, mi, 2)
	if !ok1 || !ok2 || h > 23 || m > 59 {
		return 0, false
	}
	off := h*3600 + m*60
	if b[0] == '-' {
		off = -off
	}
	return off, true
}

// parseISO8601 reads $time_iso8601 ("2025-10-10T13:55:36+02:00") and the
// RFC 3339 forms other writers use: fractional seconds and "Z", as in
// Filebeat's @timestamp "2025-10-10T11:55:36.123Z".
func parseISO8601(b []byte) (time.Time, bool) { return parseISO8601Day(b, nil) }

// isoDay is the date an ISO 8601 time was last read with and its day
// number: a stream's timestamps share a date for a day, and checking and
// counting it is a third of the parse.
type isoDay struct {
	key  [10]byte // "2025-10-10"
	days int64
	set  bool
}

// parseISO8601Day is parseISO8601 with the date read through c, when c is
// not nil.
func parseISO8601Day(b []byte, c *isoDay) (time.Time, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	var days int64
	if c != nil && c.set && [10]byte(b[:10]) == c.key {
		days = c.days
	} else {
		y, ok1 := num(b, 0, 4)
		mo, ok2 := num(b, 5, 2)
		d, ok3 := num(b, 8, 2)
		if !(ok1 && ok2 && ok3) || !validDate(y, mo, d, 0, 0, 0) {
			return time.Time{}, false
		}
		days = daysFromCivil(y, mo, d)
		if c != nil {
			*c = isoDay{key: [10]byte(b[:10]), days: days, set: true}
		}
	}
	hh, ok4 := num(b, 11, 2)
	mm, ok5 := num(b, 14, 2)
	ss, ok6 := num(b, 17, 2)
	if !(ok4 && ok5 && ok6) || hh > 23 || mm > 59 || ss > 59 {
		return time.Time{}, false
	}
	i, nsec := 19, 0
	if b[i] == '.' || b[i] == ',' {
		i++
		start, n := i, 0 // n: decimals kept, as in nanosPrefix
		for ; i < len(b) && b[i]-'0' <= 9; i++ {
			if n < 9 {
				nsec = nsec*10 + int(b[i]-'0')
				n++
			}
		}
		if i == start {
			return time.Time{}, false
		}
		nsec *= int(fracScale[n])
	}
	rest := b[i:]
	off := 0
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	default:
		var ok bool
		if off, ok = zoneOffset(rest, true); !ok {
			return time.Time{}, false
		}
	}
	return civilDays(days, hh, mm, ss, nsec, off)
}

// parseMsec reads $msec: Unix seconds with millisecond resolution,
// "1728561336.123". The result is in UTC since $msec carries no zone.
func parseMsec(b []byte) (time.Time, bool) {
	ns, ok := parseNanos(b)
	if !ok || ns > maxNano {
		return time.Time{}, false
	}
	return time.Unix(ns/1e9, ns%1e9).UTC(), true
}

// parseAnyTime recognises the form by its shape, so that a JSON key like
// "time" works whichever time variable the template put behind it.
func parseAnyTime(b []byte) (time.Time, bool) {
	switch {
	case len(b) == 26 && b[2] == '/':
		return parseTimeLocal(b)
	case len(b) >= 20 && b[4] == '-':
		return parseISO8601(b)
	}
	return parseMsec(b)
}

// dateCache remembers the date and zone of the last $time_local, which
// changes once a day in a stream, so that most lines only parse hh:mm:ss.
type dateCache struct {
	key  [16]byte // bytes 0-10 ("10/Oct/2025") and 21-25 ("+0200")
	days int64
	off  int
	loc  *time.Location
}

// parseTime reads any of the time forms, $time_local through the cache.
func (r *Record) parseTime(b []byte) (time.Time, bool) {
	if len(b) != 26 || b[2] != '/' {
		return parseAnyTime(b)
	}
	var key [16]byte
	copy(key[:11], b[:11])
	copy(key[11:], b[21:])
	c := &r.dates
	if c.loc == nil || key != c.key {
		t, ok := parseTimeLocal(b)
		if !ok {
			return t, false
		}
		_, off := t.Zone()
		d, _ := num(b, 0, 2)
		y, _ := num(b, 7, 4)
		*c = dateCache{key: key, days: daysFromCivil(y, monthIndex(b[3:6]), d), off: off, loc: t.Location()}
		return t, true
	}
	// "hh:mm:ss" in one word: a digit is 0x30-0x39 (high nibble 3, low
	// nibble at most 9, so that adding 6 does not carry into the high
	// nibble), a colon 0x3a.
	w := binary.LittleEndian.Uint64(b[12:20])
	if w&0xf0f0_f0f0_f0f0_f0f0 != 0x3030_3030_3030_3030 || w&0x0000_ff00_00ff_0000 != 0x0000_3a00_003a_0000 ||
		(w&0x0f0f_0f0f_0f0f_0f0f+0x0606_0606_0606_0606)&0xf0f0_00f0_f000_f0f0 != 0 || b[11] != ':' || b[20] != ' ' {
		return time.Time{}, false
	}
	// Each digit times ten plus the next: hh, mm and ss in bytes 0, 3, 6.
	d := w & 0x0f0f_0f0f_0f0f_0f0f
	p := d*10 + d>>8
	hh, mm, ss := int(p&0xff), int(p>>24&0xff), int(p>>48&0xff)
	if hh > 23 || mm > 59 || ss > 59 {
		return time.Time{}, false
	}
	sec := c.days*86400 + int64(hh*3600+mm*60+ss) - int64(c.off)
	if !inWindow(sec) {
		return time.Time{}, false
	}
	return time.Unix(sec, 0).In(c.loc), true
}
