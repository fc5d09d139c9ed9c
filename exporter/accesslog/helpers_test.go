package accesslog

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// summary renders the interpreted fields of a Record in a fixed order,
// leaving out those not set, so that a test or a golden file states exactly
// what a line means.
func summary(r *Record) string {
	var b strings.Builder
	str := func(k string, v []byte) {
		if v != nil {
			fmt.Fprintf(&b, " %s=%s", k, strconv.Quote(string(v)))
		}
	}
	num := func(k string, v int64, unset int64) {
		if v != unset {
			fmt.Fprintf(&b, " %s=%d", k, v)
		}
	}
	dur := func(k string, v float64) {
		if v != -1 {
			fmt.Fprintf(&b, " %s=%s", k, strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	tm := func(k string, t time.Time) {
		if !t.IsZero() {
			fmt.Fprintf(&b, " %s=%s", k, t.Format(time.RFC3339Nano))
		}
	}
	if r.Enveloped {
		b.WriteString(" enveloped")
	}
	str("host", r.Host)
	str("file", r.File)
	tm("ts", r.Timestamp)
	tm("time", r.Time)
	str("remote", r.RemoteAddr)
	str("vhost", r.VHost)
	str("method", r.Method)
	str("path", r.Path)
	str("query", r.Query)
	str("proto", r.Protocol)
	num("status", int64(r.Status), 0)
	num("body", r.BodyBytes, -1)
	num("bytes", r.BytesSent, -1)
	dur("rt", r.RequestTime)
	dur("urt", r.UpstreamResponseTime)
	dur("uct", r.UpstreamConnectTime)
	dur("uht", r.UpstreamHeaderTime)
	num("ustatus", int64(r.UpstreamStatus), 0)
	str("uaddr", r.UpstreamAddr)
	num("tries", int64(r.UpstreamTries), 0)
	str("reqid", r.RequestID)
	str("trace", r.TraceID)
	return strings.TrimSpace(b.String())
}

// errSummary renders a parse error as its reason, variable, offset and text.
func errSummary(err error) string {
	if err == nil {
		return ""
	}
	var pe *ParseError
	if !errors.As(err, &pe) {
		return "not a ParseError: " + err.Error()
	}
	return fmt.Sprintf("%s var=%s offset=%d: %s", pe.Reason, pe.Var, pe.Offset, pe.Error())
}

func mustCompile(t testing.TB, name, format string, e Escape) *Format {
	t.Helper()
	f, err := Compile(name, format, e)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// renderLine writes a line of format f back from a Record's raw values: the
// inverse of Parse, used to check that parsing loses nothing.
func renderLine(f *Format, r *Record) []byte {
	var out []byte
	for _, o := range f.text.ops {
		out = append(out, o.lit.b...)
		out = append(out, r.val(o.slot)...)
	}
	return append(out, f.text.tail.b...)
}

// escapeValue writes v as nginx would with escaping e.
func escapeValue(v []byte, e Escape) []byte {
	var out []byte
	for _, c := range v {
		switch e {
		case EscapeDefault:
			if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
				out = fmt.Appendf(out, `\x%02X`, c)
				continue
			}
		case EscapeJSON:
			switch {
			case c == '"' || c == '\\':
				out = append(out, '\\', c)
				continue
			case c == '\n':
				out = append(out, `\n`...)
				continue
			case c < 0x20:
				out = fmt.Appendf(out, `\u%04x`, c)
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

func mustFloat(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(err)
	}
	return f
}

func mustRegexp(s string) *regexp.Regexp { return regexp.MustCompile(s) }
