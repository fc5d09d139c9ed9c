package soak

import (
	"slices"
	"testing"
	"time"
)

// The schedule is the soak's replay key: the same seed must give the same
// faults, two faults on one resource never overlap (never two brokers of
// three down), every fault ends before the cooldown, and a long enough run
// sees every kind.
func TestPlan(t *testing.T) {
	const d, warm, cool = 30 * time.Minute, 20 * time.Second, 40 * time.Second
	for seed := uint64(1); seed <= 50; seed++ {
		p := NewPlan(seed, d, 4, warm, cool)
		if q := NewPlan(seed, d, 4, warm, cool); !slices.Equal(p.Faults, q.Faults) {
			t.Fatalf("seed %d: two plans differ", seed)
		}
		seen := map[Kind]int{}
		for i, f := range p.Faults {
			seen[f.Kind]++
			if f.At < warm || f.End() > d-cool || f.For < specs[f.Kind].min || f.For > specs[f.Kind].max {
				t.Errorf("seed %d: %s outside [%s, %s] or its length bounds", seed, f, warm, d-cool)
			}
			if n := specs[f.Kind].targets; f.Target < 0 || (n > 0 && f.Target >= n) {
				t.Errorf("seed %d: %s: bad target", seed, f)
			}
			for _, g := range p.Faults[:i] {
				if specs[g.Kind].resource == specs[f.Kind].resource && f.At < g.End()+specs[g.Kind].settle {
					t.Errorf("seed %d: %s overlaps %s on %s", seed, f, g, specs[f.Kind].resource)
				}
			}
		}
		if len(seen) != len(Kinds) {
			t.Errorf("seed %d: kinds seen %v, want all %d", seed, seen, len(Kinds))
		}
	}
	if p := NewPlan(7, 3*time.Minute, 4, warm, cool); len(p.Faults) < 3 {
		t.Errorf("3 minutes at 4/min gave %d faults:\n%s", len(p.Faults), p)
	}
	if p := NewPlan(7, 50*time.Second, 4, warm, cool); len(p.Faults) != 0 {
		t.Errorf("no room for faults, got %d", len(p.Faults))
	}
}

// Overlap happens: some fault starts while another of a different resource
// is on, across a long run.
func TestPlanOverlaps(t *testing.T) {
	p := NewPlan(3, 30*time.Minute, 4, 20*time.Second, 40*time.Second)
	overlaps := 0
	for i, f := range p.Faults {
		for _, g := range p.Faults[:i] {
			if f.At < g.End() {
				overlaps++
			}
		}
	}
	if overlaps == 0 {
		t.Errorf("no overlapping faults in:\n%s", p)
	}
}
