package metrics

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// A Host-header flood (issue 13, defect 9): 20,000 forged hosts fill the
// series budget while shop.example.com serves real 503s whose label set is
// new. The 5xx ratio computed from the exposition stays exact: per job with
// the budget alone (status and method are never folded), and per vhost too
// with an allow-list (forged hosts never reach the budget).
func TestHostFlood(t *testing.T) {
	type count struct{ all, errors float64 }
	run := func(t *testing.T, cfg config.Metrics) (exposed map[string]count, want map[string]count, series int) {
		m, reg := newRequests(t, cfg)
		want = map[string]count{}
		observe := func(r *accesslog.Record, vhost string) {
			m.Observe(r)
			c := want[vhost]
			c.all++
			if r.Status >= 500 {
				c.errors++
			}
			want[vhost] = c
			c = want["job"]
			c.all++
			if r.Status >= 500 {
				c.errors++
			}
			want["job"] = c
		}
		// Before the flood: the real vhosts' usual label sets.
		for i := range 200 {
			observe(rec("shop.example.com", "GET", "/", 200, 0.01, 0.01, 100), "shop.example.com")
			if i%10 == 0 {
				observe(rec("api.example.com", "GET", "/", 502, 0.01, 0.01, 100), "api.example.com")
			}
		}
		rnd := rand.New(rand.NewPCG(1, 2))
		host := make([]byte, 0, 32)
		for i := range 20000 {
			host = fmt.Appendf(host[:0], "%016x.example.net", rnd.Uint64())
			status := []int{400, 404, 200, 421}[i%4]
			observe(rec(string(host), "GET", "/", status, 0.001, -1, 150), "forged")
			if i >= 12000 && i%20 == 0 {
				// Label sets first seen during the flood, past the budget.
				observe(rec("shop.example.com", "GET", "/", 503, 0.2, 0.2, 0), "shop.example.com")
				observe(rec("shop.example.com", "POST", "/", 200, 0.2, 0.2, 0), "shop.example.com")
			}
		}
		exposed = map[string]count{}
		families := textExposition(t, reg, RequestsTotal)[RequestsTotal].GetMetric()
		for _, m := range families {
			var vhost, class string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "vhost":
					vhost = l.GetValue()
				case "status_class":
					class = l.GetValue()
				}
			}
			v := m.GetCounter().GetValue()
			for _, k := range []string{vhost, "job"} {
				c := exposed[k]
				c.all += v
				if class == "5xx" {
					c.errors += v
				}
				exposed[k] = c
			}
		}
		return exposed, want, len(families)
	}
	ratio := func(c count) float64 { return c.errors / c.all }

	t.Run("budget only: per job", func(t *testing.T) {
		exposed, want, series := run(t, defaults())
		if got, w := exposed["job"], want["job"]; got != w {
			t.Errorf("job: exposed %v requests, %v 5xx (ratio %.6f); want %v, %v (ratio %.6f)",
				got.all, got.errors, ratio(got), w.all, w.errors, ratio(w))
		}
		if series > defaults().MaxSeries+maxFolded {
			t.Errorf("%d series, want at most max_series + folded", series)
		}
	})
	t.Run("allow-list: per vhost", func(t *testing.T) {
		cfg := with(func(c *config.Metrics) { c.VHosts = []string{"shop.example.com", `~^api\.example\.com$`} })
		exposed, want, series := run(t, cfg)
		for _, k := range []string{"job", "shop.example.com", "api.example.com"} {
			if got, w := exposed[k], want[k]; got != w {
				t.Errorf("%s: exposed %v requests, %v 5xx (ratio %.6f); want %v, %v (ratio %.6f)",
					k, got.all, got.errors, ratio(got), w.all, w.errors, ratio(w))
			}
		}
		if got, w := exposed[unlisted], want["forged"]; got != w {
			t.Errorf("forged hosts under %s: %v, want %v", unlisted, got, w)
		}
		if exposed[overflow].all != 0 {
			t.Errorf("%v lines folded into vhost=%s with an allow-list, want 0", exposed[overflow].all, overflow)
		}
		if series > 10 {
			t.Errorf("%d series of %s, want the few real label sets", series, RequestsTotal)
		}
	})
}

// textExposition renders the family name of reg in the text format and
// parses it back, as Prometheus would read it.
func textExposition(t *testing.T, reg prometheus.Gatherer, name string) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	out, err := p.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVHostList(t *testing.T) {
	m, reg := newRequests(t, config.Metrics{Labels: []string{"vhost", "status"}, NginxCompat: true,
		VHosts: []string{"shop.example.com", `~\.api\.example\.com$`, "~^static"}})
	for _, v := range []string{
		"shop.example.com", "shop.example.com", "SHOP.example.com", "shop.example.com.evil",
		"eu.api.example.com", "eu.api.example.com", "api.example.com",
		"static.example.org", "nostatic", "",
	} {
		m.Observe(rec(v, "GET", "/", 200, 0.1, -1, -1))
	}
	equalCounts(t, counters(t, reg, RequestsTotal), map[string]float64{
		"vhost=shop.example.com,status=200":   2,
		"vhost=eu.api.example.com,status=200": 2,
		"vhost=static.example.org,status=200": 1,
		"vhost=__unlisted__,status=200":       4,
		"vhost=unknown,status=200":            1, // no vhost logged: the format's default
	})
	equalCounts(t, counters(t, reg, NginxRequests), map[string]float64{
		"host=shop.example.com,status=200":   2,
		"host=eu.api.example.com,status=200": 2,
		"host=static.example.org,status=200": 1,
		"host=__unlisted__,status=200":       4,
		"host=unknown,status=200":            1,
	})
	if _, err := New(config.Metrics{VHosts: []string{"~("}}, prometheus.NewRegistry()); err == nil {
		t.Error("New accepted the regexp ~(")
	}
}
