// Package loggen generates realistic nginx access-log traffic: the lines a
// shop's nginx pair writes (several vhosts, APIs with ids and UUIDs, static
// files, upstream retries, latency tails, scanners, TLS bytes on the HTTP
// port), optionally wrapped as Filebeat 8 would ship them to Kafka.
//
// A Generator is deterministic for a seed and a clock, allocates nothing per
// line once warm, and counts what it produced (Totals) so that tests can hold
// the exporter's metrics against the truth. Produce and Write drive one into
// Kafka or an io.Writer at a set rate.
package loggen

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"time"
)

// Format is a log_format the generator writes.
type Format int

const (
	Combined  Format = iota // nginx's predefined "combined"
	Main                    // the "main" of nginx's default nginx.conf: combined + "$http_x_forwarded_for"
	MainTimed               // main + vhost, timings, upstream and request id: the exporter's default
	JSON                    // a JSON object, log_format escape=json
)

// The log_format strings of the formats. LogFormatMainTimed is the exporter's
// default format and must match the accesslog parser's "main_timed" preset
// byte for byte; the same holds for the other presets.
const (
	LogFormatCombined  = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`
	LogFormatMain      = LogFormatCombined + ` "$http_x_forwarded_for"`
	LogFormatMainTimed = LogFormatMain + ` $host $request_time $upstream_response_time $upstream_connect_time $upstream_header_time $upstream_status $upstream_addr $request_id`
	// LogFormatJSON is written with escape=json: nginx then logs an unset
	// variable as "" rather than "-", and copies bytes >= 0x80 raw.
	LogFormatJSON = `{"time":"$time_iso8601","remote_addr":"$remote_addr","request":"$request","status":$status,"body_bytes_sent":$body_bytes_sent,"request_time":$request_time,"upstream_response_time":"$upstream_response_time","upstream_status":"$upstream_status","upstream_addr":"$upstream_addr","host":"$host","http_user_agent":"$http_user_agent","http_referer":"$http_referer","request_id":"$request_id"}`
)

var formatNames = [...]string{Combined: "combined", Main: "main", MainTimed: "main_timed", JSON: "json"}

// ParseFormat returns the Format named s: combined, main, main_timed or json.
func ParseFormat(s string) (Format, error) {
	for f, n := range formatNames {
		if n == s {
			return Format(f), nil
		}
	}
	return 0, fmt.Errorf("loggen: unknown format %q (want one of %s)", s, strings.Join(formatNames[:], ", "))
}

// String is the format's preset name.
func (f Format) String() string {
	if f < 0 || int(f) >= len(formatNames) {
		return fmt.Sprintf("Format(%d)", int(f))
	}
	return formatNames[f]
}

// LogFormat is the nginx log_format string that writes lines of this format.
func (f Format) LogFormat() string {
	switch f {
	case Combined:
		return LogFormatCombined
	case Main:
		return LogFormatMain
	case MainTimed:
		return LogFormatMainTimed
	case JSON:
		return LogFormatJSON
	}
	return ""
}

// Kind is what a generated line is.
type Kind uint8

const (
	KindRequest   Kind = iota // an HTTP request
	KindEmpty                 // valid: a connection closed before sending a request, logged as "-" 400 0
	KindTLS                   // valid: a TLS ClientHello sent to the plain-HTTP port, logged as a 400 with \x16\x03... as $request
	KindTruncated             // malformed: a valid line cut short (a writer died mid-line)
	KindForeign               // malformed: an nginx error-log line that landed in the access-log stream
	KindBinary                // malformed: random bytes
	numKinds
)

var kindNames = [numKinds]string{"request", "empty", "tls", "truncated", "foreign", "binary"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Malformed reports whether no log_format parser should accept the line.
func (k Kind) Malformed() bool { return k >= KindTruncated && k < numKinds }

// Option configures a Generator.
type Option func(*config)

type config struct {
	seed      int64
	format    Format
	envelope  bool
	malformed float64
	hosts     []string
	path      string
	clock     func() time.Time
	start     time.Time
	rate      float64
}

// Seed sets the seed of the generator's random numbers. Two generators with
// the same options and seed produce the same bytes (given the same clock).
// Default 1.
func Seed(seed int64) Option { return func(c *config) { c.seed = seed } }

// WithFormat sets the log_format written. Default MainTimed, the exporter's
// default.
func WithFormat(f Format) Option { return func(c *config) { c.format = f } }

// Envelope wraps each line in a Filebeat 8.x JSON event, as Filebeat's Kafka
// output ships it. Default false: raw lines, as rsyslog's omkafka or kcat ship
// them.
func Envelope(on bool) Option { return func(c *config) { c.envelope = on } }

// MalformedRatio sets the share of lines, 0 to 1, that are malformed
// (truncated, foreign, binary). Valid-but-odd lines (TLS bytes, empty
// requests) are part of the normal mix whatever this is. Default 0.
func MalformedRatio(r float64) Option { return func(c *config) { c.malformed = r } }

// Hosts names the machines writing the logs: Filebeat's host.name and the
// Kafka key, so that one machine's lines keep their order in a partition.
// Each line comes from one of them at random. Default web-1, web-2.
func Hosts(names ...string) Option {
	return func(c *config) { c.hosts = append([]string(nil), names...) }
}

// FilePath is the log.file.path of the envelope. Default
// /var/log/nginx/access.log.
func FilePath(p string) Option { return func(c *config) { c.path = p } }

// Clock makes the generator stamp each line with now() (e.g. time.Now for
// live traffic). It overrides SimulatedClock.
func Clock(now func() time.Time) Option { return func(c *config) { c.clock = now } }

// SimulatedClock stamps line n with start + n/rate seconds: deterministic
// time, advancing as if rate lines were written per second. This is the
// default, from 2025-10-10T13:55:36Z at 1000 lines/s.
func SimulatedClock(start time.Time, rate float64) Option {
	return func(c *config) { c.clock, c.start, c.rate = nil, start, rate }
}

// Line describes the line Next wrote last.
type Line struct {
	Kind   Kind
	Host   string // the machine (Filebeat host.name, Kafka key)
	VHost  string // $host; "" for malformed lines
	Status int    // $status; 0 for malformed lines
}

// Totals is what a generator has produced so far.
type Totals struct {
	Lines     int64 // every line, malformed ones included
	Malformed int64 // lines no log_format parser should accept
	Requests  int64 // well-formed lines (Lines - Malformed), TLS and empty ones included

	Kinds    map[Kind]int64
	Classes  [6]int64 // well-formed lines by status class: Classes[2] counts 2xx; [0] is unused
	Statuses map[int]int64
	VHosts   map[string]int64 // well-formed lines by $host
	Methods  map[string]int64 // well-formed lines by method; "" for TLS and empty requests
	Hosts    map[string]int64 // every line by machine

	// Sums over well-formed lines. Times are kept in exact milliseconds, as
	// nginx prints them, so that a parser's sum can be compared exactly.
	RequestTimeMillis          int64 // sum of $request_time
	UpstreamResponseTimeMillis int64 // sum of every value in $upstream_response_time (retries summed)
	BodyBytes                  int64 // sum of $body_bytes_sent

	Bytes         int64 // bytes of the lines themselves, without newline or envelope
	EnvelopeBytes int64 // bytes of the envelopes, when enveloped (lines included)
}

// RequestTime is the sum of $request_time in seconds.
func (t Totals) RequestTime() float64 { return float64(t.RequestTimeMillis) / 1000 }

// UpstreamResponseTime is the sum of $upstream_response_time in seconds.
func (t Totals) UpstreamResponseTime() float64 {
	return float64(t.UpstreamResponseTimeMillis) / 1000
}

var methods = []string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", ""}

const noMethod = 7

type counters struct {
	lines, malformed int64
	kinds            [numKinds]int64
	status           [600]int64
	vhost            []int64
	method           [8]int64
	host             []int64
	reqMs, upMs      int64
	body             int64
	bytes, envBytes  int64
}

// Generator writes access-log lines. It is not safe for concurrent use.
type Generator struct {
	cfg  config
	rng  uint64 // wyrand state
	text bool   // nginx default escaping ("-" for unset) rather than escape=json ("" for unset)
	dash []byte

	vhosts   []vhost
	vhostCum []int
	clients  []client
	probes   []client
	browser  [][]byte
	app      [][]byte
	bot      [][]byte
	scanner  [][]byte
	probeUA  [][]byte
	fallback []byte // the upstream of the error_page location
	tlsReq   []byte

	hosts []hostState

	req   []byte // the request line being built
	line  []byte // the line, when it is wrapped afterwards
	line2 []byte // the line to cut short
	r     request

	n       int64 // lines so far: the simulated clock
	sec     int64
	tLocal  []byte // $time_local of sec
	tISO    []byte // $time_iso8601 of sec
	tErr    []byte // error-log time of sec
	envSec  int64
	envTime []byte // @timestamp of envSec, up to the seconds

	expTabs map[float64]*expTable // by sigma; filled in New only
	lnID    *expTable             // numeric ids
	lnBody  *expTable             // static file sizes
	lnApp   *expTable             // application bodies
	lnErr   *expTable             // short error bodies

	c        counters
	last     Line
	lastHost int
}

type vhost struct {
	name      string
	routes    []route
	routeCum  []int
	upstreams [][]byte
	refs      [][]byte
	refCum    []int
	uas       uaMix
}

type route struct {
	spec     *routeSpec
	lat      *expTable
	segs     []seg
	method   int
	upstream bool
}

// seg is a piece of a path: a literal (escaped for the format) or a placeholder.
type seg struct {
	lit []byte
	op  byte
}

type client struct {
	addr    []byte
	xff     []byte // nil: no X-Forwarded-For
	browser uint16
	app     uint16
}

type hostState struct {
	name   string
	key    []byte
	offset int64
	suffix []byte // the envelope after log.offset
}

// try is one upstream attempt; times in ms, -1 when nginx logs "-".
type try struct {
	addr       []byte
	status     int
	rt, ct, ht int64
	sep        byte // ',' between servers, ':' between upstream groups
}

type request struct {
	vh      int
	method  int
	request []byte // nil: none ("-")
	status  int
	body    int64
	reqMs   int64
	addr    []byte
	xff     []byte
	ua      []byte
	ref     []byte
	tries   [2]try
	ntries  int
	id0     uint64
	id1     uint64
	kind    Kind
}

var defaultStart = time.Date(2025, 10, 10, 13, 55, 36, 0, time.UTC)

// New builds a Generator.
func New(opts ...Option) (*Generator, error) {
	cfg := config{seed: 1, format: MainTimed, hosts: []string{"web-1", "web-2"},
		path: "/var/log/nginx/access.log", start: defaultStart, rate: 1000}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.format < Combined || cfg.format > JSON {
		return nil, fmt.Errorf("loggen: unknown format %d", int(cfg.format))
	}
	if !(cfg.malformed >= 0 && cfg.malformed <= 1) {
		return nil, fmt.Errorf("loggen: malformed ratio %v is not within [0, 1]", cfg.malformed)
	}
	if len(cfg.hosts) == 0 {
		return nil, errors.New("loggen: no host names")
	}
	for _, h := range cfg.hosts {
		if h == "" {
			return nil, errors.New("loggen: empty host name")
		}
	}
	if cfg.clock == nil && !(cfg.rate > 0) {
		return nil, fmt.Errorf("loggen: simulated clock rate %v is not positive", cfg.rate)
	}

	g := &Generator{cfg: cfg, text: cfg.format != JSON, sec: math.MinInt64, envSec: math.MinInt64}
	g.rng = mix64(uint64(cfg.seed))
	g.expTabs = map[float64]*expTable{}
	if g.text {
		g.dash = []byte("-")
	} else {
		g.dash = []byte{}
	}
	g.compile()
	g.c.vhost = make([]int64, len(g.vhosts))
	g.c.host = make([]int64, len(g.hosts))
	g.req = make([]byte, 0, 512)
	g.line = make([]byte, 0, 2048)
	g.line2 = make([]byte, 0, 2048)
	g.tLocal = make([]byte, 0, 64)
	g.tISO = make([]byte, 0, 64)
	g.tErr = make([]byte, 0, 64)
	g.envTime = make([]byte, 0, 64)
	return g, nil
}

// esc escapes s as the generator's format requires; nil stays nil (unset).
func (g *Generator) esc(s string) []byte {
	if g.text {
		return appendNginxEscaped([]byte{}, s)
	}
	return appendNginxJSONEscaped([]byte{}, s)
}

// escOpt is esc with "" meaning an unset variable.
func (g *Generator) escOpt(s string) []byte {
	if s == "" {
		return nil
	}
	return g.esc(s)
}

// compile turns the tables into what next draws from. The steps run in this
// order because each draws from the seeded source: the same seed, the same
// traffic.
func (g *Generator) compile() {
	g.lnID, g.lnBody, g.lnApp, g.lnErr = g.expTab(1.2), g.expTab(0.3), g.expTab(0.5), g.expTab(0.5)
	g.compileVhosts()
	g.compileClients()
	g.compileHosts()
}

// compileVhosts builds the virtual hosts with their routes, upstreams and
// referers, and the user agents, all escaped once.
func (g *Generator) compileVhosts() {
	for i := range vhostSpecs {
		vs := &vhostSpecs[i]
		vh := vhost{name: vs.name, uas: vs.uas}
		sum := 0
		for j := range vs.routes {
			rs := &vs.routes[j]
			rt := route{spec: rs, method: methodIndex(rs.method), lat: g.expTab(rs.sigma)}
			rt.upstream = len(vs.upstreams) > 0 && rs.class != classStatic && rs.class != classScanner
			rt.segs = g.compilePath(rs.path)
			vh.routes = append(vh.routes, rt)
			sum += rs.weight
			vh.routeCum = append(vh.routeCum, sum)
		}
		for _, u := range vs.upstreams {
			vh.upstreams = append(vh.upstreams, []byte(u))
		}
		sum = 0
		for _, r := range vs.referers {
			vh.refs = append(vh.refs, g.escOpt(r.s))
			sum += r.w
			vh.refCum = append(vh.refCum, sum)
		}
		g.vhosts = append(g.vhosts, vh)
	}
	sum := 0
	for _, vs := range vhostSpecs {
		sum += vs.weight
		g.vhostCum = append(g.vhostCum, sum)
	}
	for _, l := range []struct {
		dst *[][]byte
		src []string
	}{{&g.browser, browserUAs}, {&g.app, appUAs}, {&g.bot, botUAs}, {&g.scanner, scannerUAs}, {&g.probeUA, probeUAs}} {
		for _, s := range l.src {
			*l.dst = append(*l.dst, g.escOpt(s))
		}
	}
	g.fallback = []byte("10.0.9.9:8080")
	g.tlsReq = g.esc(tlsClientHello)
}

// compileClients draws the client population.
func (g *Generator) compileClients() {
	// Clients: a fixed population, so that addresses repeat as they do in
	// real logs. Addresses come from ranges reserved for documentation and
	// from the shared (CGNAT) space of mobile carriers.
	g.clients = make([]client, 4096)
	for i := range g.clients {
		c := &g.clients[i]
		var a []byte
		switch v := g.intn(100); {
		case v < 10:
			a = fmt.Appendf(nil, "2001:db8:%x:%x::%x", g.intn(0x10000), g.intn(0x10000), 1+g.intn(0xfffe))
		case v < 70:
			a = fmt.Appendf(nil, "100.%d.%d.%d", 64+g.intn(64), g.intn(256), 1+g.intn(254))
		default:
			nets := [...]string{"192.0.2", "198.51.100", "203.0.113"}
			a = fmt.Appendf(nil, "%s.%d", nets[g.intn(3)], 1+g.intn(254))
		}
		c.addr = a
		switch v := g.intn(100); {
		case v < 8:
			c.xff = fmt.Appendf(nil, "198.51.100.%d", 1+g.intn(254))
		case v < 12:
			c.xff = fmt.Appendf(nil, "203.0.113.%d, 10.20.%d.%d", 1+g.intn(254), g.intn(4), 1+g.intn(254))
		}
		c.browser = uint16(g.intn(len(g.browser)))
		c.app = uint16(g.intn(len(g.app)))
	}
	for _, a := range []string{"10.0.0.2", "10.0.0.3", "10.0.3.7"} {
		g.probes = append(g.probes, client{addr: []byte(a)})
	}
}

// compileHosts builds each host's Filebeat envelope tail, with its agent ids.
func (g *Generator) compileHosts() {
	for i, h := range g.cfg.hosts {
		eph := g.uuid(nil, uint64(i)^g.u64())
		id := g.uuid(nil, uint64(i)^g.u64())
		var s []byte
		s = append(s, `,"file":{"path":"`...)
		s = appendJSONString(s, []byte(g.cfg.path))
		s = append(s, `"}},"input":{"type":"filestream"},"host":{"name":"`...)
		s = appendJSONString(s, []byte(h))
		s = append(s, `"},"agent":{"ephemeral_id":"`...)
		s = append(s, eph...)
		s = append(s, `","id":"`...)
		s = append(s, id...)
		s = append(s, `","name":"`...)
		s = appendJSONString(s, []byte(h))
		s = append(s, `","type":"filebeat","version":"`+beatVersion+`"},"ecs":{"version":"8.0.0"}}`...)
		g.hosts = append(g.hosts, hostState{name: h, key: []byte(h), suffix: s})
	}
}

func methodIndex(m string) int {
	for i, s := range methods {
		if s == m {
			return i
		}
	}
	panic("loggen: method " + m + " not in the method table")
}

func (g *Generator) compilePath(p string) []seg {
	var segs []seg
	for p != "" {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			segs = append(segs, seg{lit: g.esc(p)})
			break
		}
		if i > 0 {
			segs = append(segs, seg{lit: g.esc(p[:i])})
		}
		j := strings.IndexByte(p[i:], '}')
		name := p[i+1 : i+j]
		op := map[string]byte{"id": 'i', "uuid": 'u', "hash": 'h', "page": 'p', "slug": 's', "q": 'q', "w": 'w', "off": 'o'}[name]
		if op == 0 {
			panic("loggen: unknown placeholder {" + name + "}")
		}
		segs = append(segs, seg{op: op})
		p = p[i+j+1:]
	}
	return segs
}

// Random numbers, straight from the PCG to keep the hot path short.

// u64 is wyrand: one add and one multiply per number, which matters at
// twenty numbers a line; its quality is ample for traffic.
func (g *Generator) u64() uint64 {
	g.rng += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(g.rng, g.rng^0xe7037ed1a0b428db)
	return hi ^ lo
}

func (g *Generator) intn(n int) int {
	hi, _ := bits.Mul64(g.u64(), uint64(n))
	return int(hi)
}

func (g *Generator) float() float64 { return float64(g.u64()>>11) / (1 << 53) }

// per reports true with probability n/d.
func (g *Generator) per(n, d int) bool { return g.intn(d) < n }

func pick(cum []int, v int) int {
	for i, c := range cum {
		if v < c {
			return i
		}
	}
	return len(cum) - 1
}

// expTable holds e^(sigma*z) for the quantiles z of N(0,1) at (i+0.5)/n:
// a log-normal draw is then one lookup, not an exp and a normal draw. The
// table reaches 3.1 sigma; the rarer tail is modelled as outliers.
type expTable [512]float64

// expTab returns the table for sigma, built once per generator.
func (g *Generator) expTab(sigma float64) *expTable {
	if t := g.expTabs[sigma]; t != nil {
		return t
	}
	t := new(expTable)
	for i := range t {
		z := math.Sqrt2 * math.Erfinv(2*(float64(i)+0.5)/float64(len(t))-1)
		t[i] = math.Exp(sigma * z)
	}
	g.expTabs[sigma] = t
	return t
}

// logNormal returns median * e^(sigma*N(0,1)), sigma being t's.
func (g *Generator) logNormal(median float64, t *expTable) float64 {
	return median * t[g.u64()>>55]
}

// uuid appends the version-4 UUID derived from v.
func (g *Generator) uuid(dst []byte, v uint64) []byte {
	a, b := mix64(v), mix64(v^0xa5a5a5a5a5a5a5a5)
	a = a&^0xf000 | 0x4000     // version 4
	b = b&^(0xc<<60) | 0x8<<60 // variant 10
	var h [32]byte
	hb := appendHex64(appendHex64(h[:0], a), b)
	dst = append(dst, hb[:8]...)
	dst = append(dst, '-')
	dst = append(dst, hb[8:12]...)
	dst = append(dst, '-')
	dst = append(dst, hb[12:16]...)
	dst = append(dst, '-')
	dst = append(dst, hb[16:20]...)
	dst = append(dst, '-')
	return append(dst, hb[20:32]...)
}

// mix64 is splitmix64's finaliser: a fixed bijection that scatters bits.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Last describes the line Next wrote last.
func (g *Generator) Last() Line { return g.last }

// Format is the generator's format.
func (g *Generator) Format() Format { return g.cfg.format }

// Enveloped reports whether lines are wrapped in a Filebeat envelope.
func (g *Generator) Enveloped() bool { return g.cfg.envelope }

// Totals returns a snapshot of what the generator has produced so far.
func (g *Generator) Totals() Totals {
	c := &g.c
	t := Totals{
		Lines: c.lines, Malformed: c.malformed, Requests: c.lines - c.malformed,
		Kinds: map[Kind]int64{}, Statuses: map[int]int64{}, VHosts: map[string]int64{},
		Methods: map[string]int64{}, Hosts: map[string]int64{},
		RequestTimeMillis: c.reqMs, UpstreamResponseTimeMillis: c.upMs, BodyBytes: c.body,
		Bytes: c.bytes, EnvelopeBytes: c.envBytes,
	}
	for k, n := range c.kinds {
		if n > 0 {
			t.Kinds[Kind(k)] = n
		}
	}
	for s, n := range c.status {
		if n > 0 {
			t.Statuses[s] = n
			t.Classes[s/100] += n
		}
	}
	for i, n := range c.vhost {
		if n > 0 {
			t.VHosts[g.vhosts[i].name] = n
		}
	}
	for i, n := range c.method {
		if n > 0 {
			t.Methods[methods[i]] = n
		}
	}
	for i, n := range c.host {
		if n > 0 {
			t.Hosts[g.hosts[i].name] += n
		}
	}
	return t
}
