package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// defaultsFile names the source of a Config that was not read from a file.
const defaultsFile = "<defaults>"

// maxErrors caps how many problems one load reports: enough to fix a file in
// one pass, few enough that a file of the wrong kind does not flood a terminal.
const maxErrors = 20

// Error is one problem with a config value. Its text is
//
//	file:line: field: message
//
// e.g. `config.yml:14: metrics.labels[2]: unknown label "stauts"`. Line is
// left out when the value came from the defaults and Field when the problem
// is not with one value (a YAML syntax error).
type Error struct {
	File  string // as given to Load or Parse; "<defaults>" for Default()
	Line  int    // 1-based line of the field's key; 0 when not in the file
	Field string // dotted path with list indexes, e.g. input.formats[1].name
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errorf reports a problem with the value at field (a dotted path such as
// "input.format" or "input.formats[1].format") in the same shape as the
// errors from Parse, so that a check made later by another package, e.g.
// compiling the log_format, points at the line the user has to change.
func (c *Config) Errorf(field string, format string, args ...any) error {
	return &Error{File: c.source(), Line: c.lines[field], Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (c *Config) source() string {
	if c.file == "" {
		return defaultsFile
	}
	return c.file
}

// joinErrors puts errs in file order (values from defaults, without a line,
// last), caps their number and joins them one per line.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Compare(lineKey(a.Line), lineKey(b.Line))
	})
	var out []error
	for i, e := range errs {
		if i == maxErrors {
			out = append(out, fmt.Errorf("%s: ... and %d more errors", e.File, len(errs)-maxErrors))
			break
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

func lineKey(line int) int {
	if line == 0 {
		return int(^uint(0) >> 1)
	}
	return line
}

// closest is the candidate nearest to s by edit distance, or "" when none is
// near enough to be a likely typo.
func closest(s string, candidates []string) string {
	best, bestD := "", 3 // at most two edits: "brokerz" -> "brokers", "stauts" -> "status"
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD && d < len(s) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
