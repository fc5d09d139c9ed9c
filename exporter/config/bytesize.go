package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

const (
	kB  ByteSize = 1000
	mB  ByteSize = 1000 * kB
	gB  ByteSize = 1000 * mB
	kiB ByteSize = 1024
	miB ByteSize = 1024 * kiB
	giB ByteSize = 1024 * miB
)

// byteUnits is in the order String tries them: the largest unit that
// divides the size exactly wins, so 52428800 prints as 50MiB and 1000000 as 1MB.
var byteUnits = []struct {
	name string
	size ByteSize
}{
	{"GiB", giB}, {"GB", gB}, {"MiB", miB}, {"MB", mB}, {"KiB", kiB}, {"KB", kB}, {"B", 1},
}

// ParseByteSize reads a size written as a plain number of bytes (1048576) or
// a number with a unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB
// (powers of 1024). Units are case-insensitive and may follow a space;
// fractions are allowed when they come to whole bytes ("1.5KiB").
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	num := strings.TrimRight(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
	unit := strings.TrimSpace(s[len(num):])
	num = strings.TrimSpace(num)
	mult := ByteSize(0)
	if unit == "" {
		mult = 1
	}
	for _, u := range byteUnits {
		if strings.EqualFold(unit, u.name) {
			mult = u.size
		}
	}
	if mult == 0 || num == "" {
		return 0, fmt.Errorf("invalid size %q: want bytes as an integer or with a unit B, KB, MB, GB, KiB, MiB or GiB", s)
	}
	// Integers are parsed as integers so that large exact sizes keep every bit.
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("invalid size %q: must not be negative", s)
		}
		if n > math.MaxInt64/int64(mult) {
			return 0, fmt.Errorf("invalid size %q: too large", s)
		}
		return ByteSize(n) * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid size %q: want bytes as an integer or with a unit B, KB, MB, GB, KiB, MiB or GiB", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("invalid size %q: must not be negative", s)
	}
	b := f * float64(mult)
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	if b != math.Trunc(b) {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	return ByteSize(b), nil
}

// String writes the size with the largest unit that keeps it exact, so that
// it reads back to the same value: 50MiB, 1MB, 1500B.
func (b ByteSize) String() string {
	if b == 0 {
		return "0B"
	}
	for _, u := range byteUnits {
		if b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B" // unreachable: B divides everything
}

// MarshalYAML writes the human form, as String does.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }
