package pipeline

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestDelaySeconds checks the event delay against what it replaces,
// now.Sub(ts).Seconds(), bit for bit: the histogram's sum is exposed.
func TestDelaySeconds(t *testing.T) {
	wall := time.Date(2026, 11, 30, 21, 0, 0, 123456789, time.UTC)
	nows := []time.Time{time.Now(), wall, wall.In(time.FixedZone("x", 3600)), time.Unix(0, 0), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)}
	var tss []time.Time
	for _, now := range nows {
		base := now.Round(0) // a parsed time has no monotonic reading
		for _, d := range []time.Duration{0, 1, -1, time.Millisecond, -time.Second, 999999999, 1e9 + 1, time.Hour, -time.Hour, 24 * time.Hour * 365 * 100} {
			tss = append(tss, base.Add(-d))
		}
		for _, s := range []int64{maxDelaySeconds - 1, maxDelaySeconds, maxDelaySeconds + 1} {
			for _, ns := range []int64{0, 999999999} {
				tss = append(tss, time.Unix(base.Unix()-s, ns), time.Unix(base.Unix()+s, ns))
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		tss = append(tss, time.Unix(r.Int64N(1<<36)-1<<35, r.Int64N(1e9)))
	}
	tss = append(tss, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Unix(math.MaxInt64/2, 0), time.Unix(math.MinInt64/2, 0))
	bad := 0
	for _, now := range nows {
		for _, ts := range tss {
			want := now.Sub(ts).Seconds()
			if got := delaySeconds(now, ts); math.Float64bits(got) != math.Float64bits(want) {
				bad++
				if bad <= 20 {
					t.Errorf("delaySeconds(%v, %v) = %v, want %v", now, ts, got, want)
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d differ", bad, len(nows)*len(tss))
	}
}
