package accesslog

import (
	"strconv"
	"strings"
)

// Reason says why a line did not parse. The set is small and fixed so that it
// can be a Prometheus label value (accesslog_exporter_parse_errors_total).
type Reason uint8

const (
	// ReasonEmptyLine: the record or the envelope's message is empty.
	ReasonEmptyLine Reason = iota + 1
	// ReasonLiteralMismatch: the text between two variables is not what the
	// log_format says; usually the line was written with another format.
	ReasonLiteralMismatch
	// ReasonUnterminatedQuote: a quoted value has no closing quote, e.g. a
	// line cut short by a writer or a shipper's line-length limit.
	ReasonUnterminatedQuote
	// ReasonTrailingData: the line goes on after the format's last literal.
	ReasonTrailingData
	// ReasonBadStatus: $status or $upstream_status is not a 3-digit code.
	ReasonBadStatus
	// ReasonBadNumber: a byte count or a duration is not a number or "-".
	ReasonBadNumber
	// ReasonBadTime: $time_local, $time_iso8601, $msec or the envelope's
	// @timestamp does not parse, or is outside 1970 to 2199.
	ReasonBadTime
	// ReasonBadJSON: a JSON access line is not a well-formed JSON object,
	// or a Filebeat envelope's message is not a string.
	ReasonBadJSON
	// ReasonMissingField: a JSON access line is well formed but lacks what
	// makes it a request ($status): "{}" or some other JSON object.
	ReasonMissingField

	numReasons = iota + 1
)

var reasonNames = [...]string{
	"",
	"empty_line",
	"literal_mismatch",
	"unterminated_quote",
	"trailing_data",
	"bad_status",
	"bad_number",
	"bad_time",
	"bad_json",
	"missing_field",
}

// String is the label value, e.g. "bad_status".
func (r Reason) String() string {
	if int(r) < len(reasonNames) && r != 0 {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every Reason, so that a caller can create all label values up
// front and a dashboard sees zeros instead of missing series.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons)
	for r := Reason(1); r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// ParseError is a line that does not match its format. The parser keeps one
// in each Record and returns a pointer to it, so a failing line costs no
// allocation; like the Record's other fields it is overwritten by the next
// call that fills the same Record, so keep the values, not the pointer.
type ParseError struct {
	Reason Reason
	// Var is the variable (without '$') whose value did not parse, or whose
	// leading literal or end was not found; empty when the failure is not
	// about one variable (empty line, trailing data, malformed JSON).
	Var string
	// Offset is the byte offset in Record.Line where the failure was seen.
	Offset int
	// Want says what was expected, e.g. "a number", "a 3-digit status" or
	// "literal" (Error then quotes the literal itself).
	Want string
	// Got is a short excerpt of the line at Offset. It aliases the line.
	Got []byte
	// lit holds the expected literal when Want refers to one; rendering it
	// only in Error keeps the failure path free of allocations.
	lit []byte
}

// Error reads like `byte 57: $status: want a number, got "abc"`.
func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("byte ")
	b.WriteString(strconv.Itoa(e.Offset))
	b.WriteString(": ")
	if e.Var != "" {
		if e.Var[0] != '@' { // @timestamp is the envelope's, not a variable
			b.WriteByte('$')
		}
		b.WriteString(e.Var)
		b.WriteString(": ")
	}
	if e.Reason == ReasonEmptyLine {
		b.WriteString("empty line")
		return b.String()
	}
	b.WriteString("want ")
	b.WriteString(e.Want)
	if e.lit != nil {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(string(e.lit)))
	}
	b.WriteString(", got ")
	b.WriteString(strconv.Quote(string(e.Got)))
	return b.String()
}

// maxGot bounds ParseError.Got: enough to recognise the value in a log.
const maxGot = 40

// fail fills the Record's ParseError and returns it.
func (r *Record) fail(reason Reason, varName string, line []byte, off int, want string, lit []byte) error {
	got := []byte(nil)
	if off >= 0 && off <= len(line) {
		end := off + maxGot
		if end > len(line) {
			end = len(line)
		}
		got = line[off:end]
	}
	r.err = ParseError{Reason: reason, Var: varName, Offset: off, Want: want, Got: got, lit: lit}
	return &r.err
}

// failValue is fail for a value known by its bounds, so Got is exactly the value.
func (r *Record) failValue(reason Reason, varName string, val []byte, off int, want string) error {
	if len(val) > maxGot {
		val = val[:maxGot]
	}
	r.err = ParseError{Reason: reason, Var: varName, Offset: off, Want: want, Got: val}
	return &r.err
}
