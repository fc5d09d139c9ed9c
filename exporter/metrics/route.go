package metrics

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// maxRouteLen bounds a route label: a longer route ends in "/..." after the
// last whole segment that fits (so it is at most maxRouteLen+4 bytes), so that
// a scanner sending 8 KiB paths cannot make label values (and series keys)
// that large.
const maxRouteLen = 200

// NormalizeRoute appends to dst the route of path: path with each segment that
// looks like an identifier replaced by a placeholder, so that a route label has
// one value per handler rather than one per object. It needs no configuration
// and allocates nothing when dst has room.
//
// Segment rules, first match wins (a segment is the text between slashes):
//
//	all digits                                  :id      /orders/12345       -> /orders/:id
//	UUID 8-4-4-4-12 hex                         :uuid
//	date YYYY-MM-DD                             :date
//	e-mail address (local@domain.tld, or %40)   :email
//	>= 8 hex digits with at least one digit     :hash    /commit/3f9a2b1c    -> /commit/:hash
//	> 20 bytes of [A-Za-z0-9-_.~+=%] with both
//	  letters and digits (API keys, JWTs)       :token
//	8..20 letters and digits switching between
//	  the two at least 3 times (short ids)      :token   /watch/dQw4w9WgXcQ  -> /watch/:token
//
// A file name (a segment ending in .ext, ext being 1..5 letters or digits with
// a letter) keeps its extension and has each dot-separated part of its stem
// checked alone, so hashed assets stay readable: /static/app.3f9a2b1c.js ->
// /static/app.:hash.js and /img/12345.jpg -> /img/:id.jpg. Inside a word,
// '-' or '_' separated runs of hex with both letters and digits become :hash
// (main-3f9a2b1c.css -> main-:hash.css).
//
// Repeated slashes collapse to one, a trailing slash is kept, version segments
// (v1, v2beta) and ordinary words are kept, percent-encoding is left as is.
// A path that does not start with '/' becomes "*" for the OPTIONS asterisk
// form, the path part for an absolute URL (proxy requests), and ":other"
// otherwise (e.g. CONNECT host:port).
func NormalizeRoute(dst, path []byte) []byte {
	return normalize(dst, path, true)
}

// normalize is NormalizeRoute with the placeholders optional: with auto off
// it only collapses slashes and bounds the length.
func normalize(dst, path []byte, auto bool) []byte {
	if len(path) == 0 || path[0] != '/' {
		switch {
		case len(path) == 1 && path[0] == '*':
			return append(dst, '*')
		case hasScheme(path):
			path = afterAuthority(path)
			if len(path) == 0 {
				return append(dst, '/')
			}
		default:
			return append(dst, ":other"...)
		}
	}
	start := len(dst)
	for i := 0; i < len(path); {
		if path[i] == '/' {
			for i < len(path) && path[i] == '/' {
				i++
			}
			dst = append(dst, '/')
			continue
		}
		j := i
		for j < len(path) && path[j] != '/' {
			j++
		}
		before := len(dst)
		if auto {
			dst = appendSegment(dst, path[i:j])
		} else {
			dst = append(dst, path[i:j]...)
		}
		if len(dst)-start > maxRouteLen {
			return append(dst[:before], "..."...)
		}
		i = j
	}
	return dst
}

// hasScheme reports whether p starts like "http://" (absolute-form request target).
func hasScheme(p []byte) bool {
	for i, c := range p {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case c == ':' && i > 0:
			return len(p) >= i+3 && p[i+1] == '/' && p[i+2] == '/'
		default:
			return false
		}
	}
	return false
}

// afterAuthority returns the path of an absolute URL: from the first '/'
// after "scheme://".
func afterAuthority(p []byte) []byte {
	i := 0
	for p[i] != ':' {
		i++
	}
	p = p[i+3:]
	for i := range p {
		if p[i] == '/' {
			return p[i:]
		}
	}
	return nil
}

func appendSegment(dst, seg []byte) []byte {
	// Most segments are words or short: one pass settles them. Every
	// placeholder below needs a digit (the e-mail aside), and every one but
	// :id and a numeric file name at least 8 bytes.
	digits, at, dot := 0, false, false
	for _, c := range seg {
		switch {
		case isDigit(c):
			digits++
		case c == '@':
			at = true
		case c == '.':
			dot = true
		}
	}
	switch {
	case digits == len(seg):
		return append(dst, ":id"...)
	case !at && (digits == 0 || len(seg) < 8 && !dot):
		return append(dst, seg...)
	}
	switch {
	case isUUID(seg):
		return append(dst, ":uuid"...)
	case isDate(seg):
		return append(dst, ":date"...)
	case isEmail(seg):
		return append(dst, ":email"...)
	}
	if dot := extDot(seg); dot > 0 {
		stem := seg[:dot]
		for k := 0; ; k++ {
			part := stem
			n := indexByte(stem, '.')
			if n >= 0 {
				part = stem[:n]
			}
			if k > 0 {
				dst = append(dst, '.')
			}
			if k == 0 && isDigits(part) {
				dst = append(dst, ":id"...)
			} else {
				dst = appendPart(dst, part)
			}
			if n < 0 {
				break
			}
			stem = stem[n+1:]
		}
		return append(dst, seg[dot:]...)
	}
	return appendPart(dst, seg)
}

// appendPart classifies a segment, or a dot-separated part of a file name.
func appendPart(dst, p []byte) []byte {
	switch {
	case isUUID(p):
		return append(dst, ":uuid"...)
	case isHexID(p):
		return append(dst, ":hash"...)
	case isToken(p):
		return append(dst, ":token"...)
	}
	// Runs separated by '-' or '_': keep words, fold hex hashes.
	for len(p) > 0 {
		n := 0
		for n < len(p) && p[n] != '-' && p[n] != '_' {
			n++
		}
		if run := p[:n]; len(run) >= 8 && isHexID(run) && hasHexLetter(run) {
			dst = append(dst, ":hash"...)
		} else {
			dst = append(dst, run...)
		}
		if n == len(p) {
			break
		}
		dst = append(dst, p[n])
		p = p[n+1:]
	}
	return dst
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isHex(c byte) bool    { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

func isUUID(b []byte) bool {
	if len(b) != 36 {
		return false
	}
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isDate(b []byte) bool {
	if len(b) != 10 || b[4] != '-' || b[7] != '-' {
		return false
	}
	for i, c := range b {
		if i != 4 && i != 7 && !isDigit(c) {
			return false
		}
	}
	return true
}

// isEmail is deliberately loose: something, an at sign (or %40), then a
// domain with a dot.
func isEmail(b []byte) bool {
	for i := 1; i < len(b); i++ {
		at := 0
		if b[i] == '@' {
			at = 1
		} else if b[i] == '%' && i+2 < len(b) && b[i+1] == '4' && b[i+2] == '0' {
			at = 3
		}
		if at == 0 {
			continue
		}
		dom := b[i+at:]
		d := indexByte(dom, '.')
		return d > 0 && d < len(dom)-1
	}
	return false
}

// isHexID: at least 8 hex digits including at least one decimal digit, so
// that words made of a-f ("deadbeef", "facade") stay words.
func isHexID(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	digit := false
	for _, c := range b {
		if !isHex(c) {
			return false
		}
		digit = digit || isDigit(c)
	}
	return digit
}

func hasHexLetter(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return true
		}
	}
	return false
}

func isToken(b []byte) bool {
	if len(b) > 20 {
		digit, letter := false, false
		for _, c := range b {
			switch {
			case isDigit(c):
				digit = true
			case isLetter(c):
				letter = true
			case c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '=' || c == '%':
			default:
				return false
			}
		}
		return digit && letter
	}
	if len(b) < 8 {
		return false
	}
	switches := 0
	for i, c := range b {
		d := isDigit(c)
		if !d && !isLetter(c) {
			return false
		}
		if i > 0 && d != isDigit(b[i-1]) {
			switches++
		}
	}
	return switches >= 3
}

// extDot returns the index of the dot before a file extension (1..5 letters
// or digits, at least one letter), or -1. A leading dot (.htaccess) is not
// an extension.
func extDot(b []byte) int {
	for i := len(b) - 1; i > 0 && len(b)-i <= 6; i-- {
		if b[i] != '.' {
			continue
		}
		ext := b[i+1:]
		if len(ext) == 0 {
			return -1
		}
		letter := false
		for _, c := range ext {
			if !isDigit(c) && !isLetter(c) {
				return -1
			}
			letter = letter || isLetter(c)
		}
		if !letter {
			return -1
		}
		return i
	}
	return -1
}

// routeRule is one configured rewrite.
type routeRule struct {
	re      *regexp.Regexp
	replace string
}

// router maps a request path to its route label. Configured rules are
// regular expressions, far too slow for every line, so with rules the
// result is cached per distinct path; without rules NormalizeRoute runs
// directly (it is cheaper than a cache lookup).
type router struct {
	rules []routeRule
	auto  bool
	cache *routeCache // nil without rules
}

func newRouter(rules []routeRule, auto bool) *router {
	rt := &router{rules: rules, auto: auto}
	if len(rules) > 0 {
		rt.cache = newRouteCache()
	}
	return rt
}

func (rt *router) appendRoute(dst, path []byte) []byte {
	if len(path) == 0 {
		return append(dst, unknown...)
	}
	if rt.cache == nil {
		return normalize(dst, path, rt.auto)
	}
	h := xxhash.Sum64(path)
	if r, ok := rt.cache.get(h, path); ok {
		return append(dst, r...)
	}
	r := rt.rewrite(string(path))
	rt.cache.put(h, string(path), r)
	return append(dst, r...)
}

// rewrite applies the first matching rule, then the automatic placeholders,
// so a rule may handle just the part of a path it knows about.
func (rt *router) rewrite(p string) string {
	for _, r := range rt.rules {
		if r.re.MatchString(p) {
			p = r.re.ReplaceAllString(p, r.replace)
			break
		}
	}
	return string(normalize(make([]byte, 0, len(p)+8), []byte(p), rt.auto))
}

const (
	routeShards     = 16
	routeShardLimit = 1024 // entries per shard: 16384 paths in all
)

// routeCache is a bounded path->route map. A full shard is emptied rather
// than evicted entry by entry: with a working set that fits, hits dominate;
// with one that does not (every path distinct), memory stays bounded and the
// cost is re-running the rules, which must happen anyway.
type routeCache struct {
	shards [routeShards]routeShard
}

type routeShard struct {
	mu sync.RWMutex
	m  map[uint64]routeEntry
	_  [40]byte // keep shards on separate cache lines
}

type routeEntry struct{ path, route string }

func newRouteCache() *routeCache {
	c := &routeCache{}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]routeEntry, routeShardLimit)
	}
	return c
}

func (c *routeCache) get(h uint64, path []byte) (string, bool) {
	s := &c.shards[h%routeShards]
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	if !ok || e.path != string(path) {
		return "", false
	}
	return e.route, true
}

func (c *routeCache) put(h uint64, path, route string) {
	s := &c.shards[h%routeShards]
	s.mu.Lock()
	if len(s.m) >= routeShardLimit {
		clear(s.m)
	}
	s.m[h] = routeEntry{path, route}
	s.mu.Unlock()
}

func compileRules(cfg []config.RouteRule) ([]routeRule, error) {
	rules := make([]routeRule, 0, len(cfg))
	for i, r := range cfg {
		re, err := regexp.Compile(r.Match)
		if err != nil {
			return nil, fmt.Errorf("metrics: routes.rules[%d].match %q: %v", i, r.Match, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		rules = append(rules, routeRule{re: re, replace: r.Replace})
	}
	return rules, nil
}
