package metrics

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
)

// Label values used when a line has nothing better.
const (
	unknown  = "unknown"      // method, status, status_class, route, vhost not logged or unusable
	none     = "-"            // upstream, host or var_NAME empty, as nginx logs it
	overflow = "__other__"    // unbounded labels of a label set past max_series
	unlisted = "__unlisted__" // vhost not in metrics.vhosts
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

// unbounded reports whether the label's values come from the request
// itself without a fixed set: these fold into __other__ past max_series.
func (k labelKind) unbounded() bool {
	switch k {
	case labelMethod, labelStatus, labelStatusClass:
		return false
	}
	return true
}

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

// methodNames is the fixed set request methods fold onto, indexed by
// methodIndex.
var methodNames = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
	"PATCH", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", unknown, "other"}

// foldMethod maps a request method onto a fixed set, so that garbage in the
// request line cannot mint series.
func foldMethod(m []byte) string { return methodNames[methodIndex(m)] }

func methodIndex(m []byte) int {
	switch string(m) {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "DELETE":
		return 4
	case "CONNECT":
		return 5
	case "OPTIONS":
		return 6
	case "TRACE":
		return 7
	case "PATCH":
		return 8
	case "PROPFIND":
		return 9
	case "PROPPATCH":
		return 10
	case "MKCOL":
		return 11
	case "COPY":
		return 12
	case "MOVE":
		return 13
	case "LOCK":
		return 14
	case "UNLOCK":
		return 15
	case "":
		return 16
	}
	return 17
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
	f        *accesslog.Format
	vhostKey []byte // vhost for lines that log none, encoded as in a series key
	// vhostFixed is vhostKey when short enough (vhostShort), written
	// without a copy.
	vhostFixed fixedKey
	vhostShort bool
	slots      []int // variable slot per Requests.vars entry, -1 when not logged
}

// vhostList is metrics.vhosts: the vhosts that keep their name. Exact names
// are a map lookup per line; the regular expressions' verdict is cached per
// distinct vhost, bounded, since a forged Host header is a new value each time.
type vhostList struct {
	exact map[string]bool
	res   []*regexp.Regexp
	cache *routeCache // vhost -> "" when unlisted; nil without res
}

func newVHostList(cfg []string) (*vhostList, error) {
	if len(cfg) == 0 {
		return nil, nil
	}
	l := &vhostList{exact: map[string]bool{}}
	for i, v := range cfg {
		expr, ok := strings.CutPrefix(v, "~")
		if !ok {
			l.exact[v] = true
			continue
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("metrics: vhosts[%d] %q: %v", i, v, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		l.res = append(l.res, re)
	}
	if len(l.res) > 0 {
		l.cache = newRouteCache()
	}
	return l, nil
}

// listed reports whether v keeps its name. It allocates only for a vhost
// the regular expressions have not seen lately.
func (l *vhostList) listed(v []byte) bool {
	if l.exact[string(v)] {
		return true
	}
	if l.cache == nil {
		return false
	}
	h := xxhash.Sum64(v)
	if r, ok := l.cache.get(h, v); ok {
		return r != ""
	}
	r := ""
	for _, re := range l.res {
		if re.Match(v) {
			r = "listed"
			break
		}
	}
	l.cache.put(h, string(v), r)
	return r != ""
}
