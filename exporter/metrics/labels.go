package metrics

import (
	"fmt"
	"strings"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
)

// Label values used when a line has nothing better.
const (
	unknown  = "unknown"   // method, status, status_class, route, vhost not logged or unusable
	none     = "-"         // upstream, host or var_NAME empty, as nginx logs it
	overflow = "__other__" // every label of a label set past max_series
)

// maxValueLen bounds any label value taken from the line: a logged variable
// can be a whole User-Agent or cookie.
const maxValueLen = 256

type labelKind uint8

const (
	labelVHost labelKind = iota
	labelMethod
	labelStatus
	labelStatusClass
	labelRoute
	labelUpstream
	labelHost
	labelVar
)

// dim is one part of a series key: a label of the request metrics, or a
// value only the nginx compat metrics need.
type dim struct {
	kind labelKind
	name string // label name
	v    int    // for labelVar: index into Requests.vars
}

// parseLabels turns the configured label names into dims, in order.
func parseLabels(names []string) (dims []dim, vars []string, err error) {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			return nil, nil, fmt.Errorf("metrics: labels: %q listed twice", n)
		}
		seen[n] = true
		d := dim{name: n}
		switch n {
		case "vhost":
			d.kind = labelVHost
		case "method":
			d.kind = labelMethod
		case "status":
			d.kind = labelStatus
		case "status_class":
			d.kind = labelStatusClass
		case "route":
			d.kind = labelRoute
		case "upstream":
			d.kind = labelUpstream
		case "host":
			d.kind = labelHost
		default:
			v, ok := strings.CutPrefix(n, "var_")
			if !ok || !validVarName(v) {
				return nil, nil, fmt.Errorf("metrics: labels: unknown label %q (known: vhost, method, status, status_class, route, upstream, host, var_NAME)", n)
			}
			d.kind, d.v = labelVar, len(vars)
			vars = append(vars, v)
		}
		dims = append(dims, d)
	}
	return dims, vars, nil
}

// validVarName accepts what nginx accepts in a variable name and Prometheus
// in a label name.
func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !isLetter(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

// foldMethod maps a request method onto a fixed set, so that garbage in the
// request line cannot mint series.
func foldMethod(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "CONNECT":
		return "CONNECT"
	case "OPTIONS":
		return "OPTIONS"
	case "TRACE":
		return "TRACE"
	case "PATCH":
		return "PATCH"
	case "PROPFIND":
		return "PROPFIND"
	case "PROPPATCH":
		return "PROPPATCH"
	case "MKCOL":
		return "MKCOL"
	case "COPY":
		return "COPY"
	case "MOVE":
		return "MOVE"
	case "LOCK":
		return "LOCK"
	case "UNLOCK":
		return "UNLOCK"
	case "":
		return unknown
	}
	return "other"
}

// statusClass is "1xx".."5xx", or "unknown" for 0 (not logged) and codes
// outside 100..599.
func statusClass(s int) string {
	switch {
	case s < 100 || s > 599:
		return unknown
	case s < 200:
		return "1xx"
	case s < 300:
		return "2xx"
	case s < 400:
		return "3xx"
	case s < 500:
		return "4xx"
	}
	return "5xx"
}

// appendStatus writes the three digits of s, or "unknown" outside 100..599.
func appendStatus(dst []byte, s int) []byte {
	if s < 100 || s > 599 {
		return append(dst, unknown...)
	}
	return append(dst, byte('0'+s/100), byte('0'+s/10%10), byte('0'+s%10))
}

// formatInfo is what a Record's Format decides once rather than per line.
type formatInfo struct {
	f     *accesslog.Format
	vhost string // vhost for lines that log none
	slots []int  // variable slot per Requests.vars entry, -1 when not logged
}
