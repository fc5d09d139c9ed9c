package metrics

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// wantKey is the series key by its definition: each label value as a
// uvarint length and its bytes, values from the line cut to maxValueLen.
func wantKey(m *Requests, r *accesslog.Record, fold bool) []byte {
	var key []byte
	put := func(v string) {
		if len(v) > maxValueLen {
			v = v[:maxValueLen]
		}
		key = binary.AppendUvarint(key, uint64(len(v)))
		key = append(key, v...)
	}
	or := func(v []byte) string {
		if len(v) == 0 {
			return none
		}
		return string(v)
	}
	fi := m.format(r.Format)
	for _, d := range m.dims {
		if fold && d.kind.unbounded() {
			put(overflow)
			continue
		}
		switch d.kind {
		case labelVHost:
			switch {
			case len(r.VHost) == 0:
				key = append(key, fi.vhostKey...)
			case m.vhosts == nil || m.vhosts.listed(r.VHost):
				put(string(r.VHost))
			default:
				put(unlisted)
			}
		case labelMethod:
			put(foldMethod(r.Method))
		case labelStatus:
			put(string(appendStatus(nil, r.Status)))
		case labelStatusClass:
			put(statusClass(r.Status))
		case labelRoute:
			put(string(m.router.appendRoute(nil, r.Path)))
		case labelUpstream:
			put(or(r.UpstreamAddr))
		case labelHost:
			put(or(r.Host))
		case labelVar:
			put(or(r.Var(fi.slots[d.v])))
		}
	}
	return key
}

// TestPutKey: the key written in place is the key by definition, for every
// label kind, values of every length (past keySmall, keyLarge and
// maxValueLen), and folded; and Observe finds one series per label set
// whichever buffer its key took.
func TestPutKey(t *testing.T) {
	format, err := accesslog.Compile("tenant", `$remote_addr [$time_local] "$request" $status $http_x_tenant $scheme`, accesslog.EscapeDefault)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := accesslog.NewDecoder(accesslog.DecoderConfig{Default: format})
	if err != nil {
		t.Fatal(err)
	}
	var records []*accesslog.Record
	lengths := []int{0, 1, 15, 16, 90, 127, 128, 200, 256, 300, 600}
	for i, n := range lengths {
		for _, status := range []int{0, 99, 100, 200, 404, 599, 600, -1} {
			for _, method := range []string{"GET", "PROPPATCH", "BREW", ""} {
				long := strings.Repeat(string(rune('a'+i)), n)
				var r accesslog.Record
				line := fmt.Sprintf(`10.0.0.1 [17/May/2024:10:00:00 +0000] "GET /%s HTTP/1.1" 200 %s x%s`, long, long, long)
				if n == 0 {
					line = `10.0.0.1 [17/May/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 - -`
				}
				if err := dec.Decode([]byte(line), &r); err != nil {
					t.Fatalf("Decode: %v", err)
				}
				r.VHost = []byte(long)
				r.Host = []byte(long)
				r.UpstreamAddr = []byte(long)
				r.Method = []byte(method)
				r.Status = status
				if method == "" {
					r.Format = nil // a second format, of lines without one
				}
				records = append(records, &r)
			}
		}
	}
	configs := map[string]config.Metrics{
		"default": defaults(),
		"all": {Labels: []string{"vhost", "method", "status", "status_class", "route", "upstream", "host", "var_http_x_tenant", "var_scheme"},
			Routes: config.Routes{Auto: true}},
		"vhosts": with(func(c *config.Metrics) { c.VHosts = []string{"bbbbbbbbbbbbbbb", "~^c+$"} }),
		"compat": with(func(c *config.Metrics) { c.Labels = []string{"method"}; c.NginxCompat = true }),
		"none":   {},
	}
	for name, cfg := range configs {
		// A long default vhost, then a short one (written as a fixedKey).
		for _, defaultVHost := range []string{strings.Repeat("d", 130), "e"} {
			t.Run(name, func(t *testing.T) {
				m, _ := newRequests(t, cfg, DefaultVHost(func(f *accesslog.Format) string {
					if f == nil {
						return "nil-" + defaultVHost
					}
					return defaultVHost
				}))
				if got, want := m.defaultKey, name == "default" || name == "vhosts"; got != want {
					t.Errorf("defaultKey %v, want %v", got, want)
				}
				var bad []string
				seen := map[string]*series{}
				for i, r := range records {
					for _, fold := range []bool{false, true} {
						want := wantKey(m, r, fold)
						for _, size := range []int{keySmall, keyLarge, 4096} {
							got := m.putKey(make([]byte, size), r, fold)
							if got == nil && len(want)+len(m.dims)*keySlack <= size {
								bad = append(bad, fmt.Sprintf("record %d fold %v: no key in %d bytes, want %q", i, fold, size, want))
							}
							if got != nil && string(got) != string(want) {
								bad = append(bad, fmt.Sprintf("record %d fold %v in %d bytes: key %q, want %q", i, fold, size, got, want))
							}
						}
						if !fold && m.defaultKey {
							var kb [keySmall]byte
							got := m.putDefaultKey(&kb, r)
							if got == nil && len(want)+3*keySlack <= keySmall {
								bad = append(bad, fmt.Sprintf("record %d: no default key in %d bytes, want %q", i, keySmall, want))
							}
							if got != nil && string(got) != string(want) {
								bad = append(bad, fmt.Sprintf("record %d: default key %q, want %q", i, got, want))
							}
						}
						if got := m.longKey(make([]byte, keySmall), r, fold); string(got) != string(want) {
							bad = append(bad, fmt.Sprintf("record %d fold %v: longKey %q, want %q", i, fold, got, want))
						}
					}
					s := m.seriesOf(r)
					if prev, ok := seen[string(wantKey(m, r, false))]; ok && prev != s {
						bad = append(bad, fmt.Sprintf("record %d: a second series for its label set", i))
					}
					seen[string(wantKey(m, r, false))] = s
				}
				if len(bad) > 0 {
					t.Errorf("%d mismatches, the first ones:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
				}
			})
		}
	}
}

// TestSeriesCacheCollisions: keys of one hash, and many keys in one shard
// (tables grown several times), each find their own series.
func TestSeriesCacheCollisions(t *testing.T) {
	m, _ := newRequests(t, defaults())
	var c seriesCache
	c.init(1000)
	key := func(i int) []byte {
		var k [keySmall]byte
		return m.putKey(k[:], rec(fmt.Sprintf("v%d", i), "GET", "/", 200, -1, -1, -1), false)
	}
	hash := func(i int) uint64 {
		if i%2 == 0 {
			return 42 // one hash for half of them
		}
		return uint64(i) * seriesShards // all in shard 0
	}
	const n = 200
	added := make([]*series, n)
	for i := range n {
		added[i] = c.add(hash(i), key(i), m, false)
	}
	var bad []string
	for i := range n {
		if s := c.get(hash(i), key(i)); s != added[i] || s == nil || s.key != string(key(i)) {
			bad = append(bad, fmt.Sprintf("key %d: got another series", i))
		}
		if s := c.add(hash(i), key(i), m, false); s != added[i] {
			bad = append(bad, fmt.Sprintf("key %d: added twice", i))
		}
	}
	if s := c.get(42, key(n+1)); s != nil {
		bad = append(bad, fmt.Sprintf("a key never added found %q", s.key))
	}
	if got := c.n.Load(); got != n {
		bad = append(bad, fmt.Sprintf("%d series counted, want %d", got, n))
	}
	if len(bad) > 0 {
		t.Errorf("%d mismatches, the first ones:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
}
