// Package soak is the chaos soak of the local stack (deploy/local): steady
// nginx traffic and bulk bursts while faults drawn from a seeded schedule
// come and go, overlapping at times, and a ledger that proves nothing was
// lost, metrics stayed fresh and no alert lied. The soak itself is the test
// TestSoak (build tag soak, `make soak`); this file is the schedule, which
// plain `go test` checks.
package soak

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The faults the soak injects.
const (
	BrokerStop      Kind = "broker-stop"      // one of the three brokers stopped, then started
	ISRShrink       Kind = "isr-shrink"       // a partition's ISR reported as its leader alone
	StoreDown       Kind = "store-down"       // the log store refuses connections
	StoreHang       Kind = "store-hang"       // the log store accepts and never answers
	StoreSlow       Kind = "store-slow"       // every push to the log store is delayed
	ReplicaKill     Kind = "replica-kill"     // an exporter replica SIGKILLed, restarted after For
	ReplicaStop     Kind = "replica-stop"     // an exporter replica stopped (SIGTERM), started after For
	FilebeatRestart Kind = "filebeat-restart" // Filebeat stopped (SIGTERM), started after For
)

// Kinds lists every kind, in a fixed order.
var Kinds = []Kind{BrokerStop, ISRShrink, StoreDown, StoreHang, StoreSlow, ReplicaKill, ReplicaStop, FilebeatRestart}

// spec is what the schedule knows of a kind: how long it lasts, how many
// targets it chooses from, the resource it holds (two faults on one resource
// never overlap: at most one broker of three is down, one proxy mode at a
// time, one replica out at a time) and how long after its end the resource
// stays held.
type spec struct {
	min, max time.Duration
	targets  int
	resource string
	settle   time.Duration
}

// SessionTimeout is the exporter's Kafka session timeout (franz-go's
// default): a SIGKILLed member keeps its partitions that long.
const SessionTimeout = 45 * time.Second

var specs = map[Kind]spec{
	BrokerStop:      {20 * time.Second, 45 * time.Second, 3, "broker", 5 * time.Second},
	ISRShrink:       {15 * time.Second, 30 * time.Second, 6, "isr", 0},
	StoreDown:       {60 * time.Second, 90 * time.Second, 0, "store", 5 * time.Second},
	StoreHang:       {20 * time.Second, 45 * time.Second, 0, "store", 5 * time.Second},
	StoreSlow:       {20 * time.Second, 45 * time.Second, 0, "store", 0},
	ReplicaKill:     {3 * time.Second, 10 * time.Second, 2, "replica", SessionTimeout},
	ReplicaStop:     {5 * time.Second, 20 * time.Second, 2, "replica", 5 * time.Second},
	FilebeatRestart: {2 * time.Second, 6 * time.Second, 0, "filebeat", 5 * time.Second},
}

// Fault is one fault of a schedule. At and For are offsets from the start of
// the soak; Target is the broker, partition or replica (0 when the kind has
// none); Delay is the added latency of StoreSlow.
type Fault struct {
	Kind   Kind
	At     time.Duration
	For    time.Duration
	Target int
	Delay  time.Duration
}

// End is when the fault is lifted, as an offset from the start.
func (f Fault) End() time.Duration { return f.At + f.For }

func (f Fault) String() string {
	s := fmt.Sprintf("%7s  %-16s for %5s", f.At.Round(time.Second), f.Kind, f.For.Round(100*time.Millisecond))
	if specs[f.Kind].targets > 0 {
		s += fmt.Sprintf("  target %d", f.Target)
	}
	if f.Delay > 0 {
		s += fmt.Sprintf("  delay %s", f.Delay)
	}
	return s
}

// Plan is a schedule.
type Plan struct {
	Seed     uint64
	Duration time.Duration
	Rate     float64 // faults per minute, on average
	Warmup   time.Duration
	Cooldown time.Duration
	Faults   []Fault
}

func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, duration %s, %.2g faults/min, faults between %s and %s: %d\n",
		p.Seed, p.Duration, p.Rate, p.Warmup, p.Duration-p.Cooldown, len(p.Faults))
	for _, f := range p.Faults {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	return b.String()
}

// NewPlan draws a schedule: arrivals at rate per minute (exponential gaps)
// between warmup and duration-cooldown, so the soak starts and ends calm.
// Kinds are dealt from a shuffled deck, so every kind comes once before any
// comes twice; an arrival whose kind would overlap a fault on the same
// resource takes the next kind of the deck that does not, or is dropped. A
// fault never lasts past duration-cooldown. The same seed gives the same plan.
func NewPlan(seed uint64, duration time.Duration, rate float64, warmup, cooldown time.Duration) Plan {
	p := Plan{Seed: seed, Duration: duration, Rate: rate, Warmup: warmup, Cooldown: cooldown}
	end := duration - cooldown
	if rate <= 0 || end <= warmup {
		return p
	}
	rng := rand.New(rand.NewPCG(seed, 0x50a6))
	busy := map[string]time.Duration{} // resource -> free from
	var deck []Kind
	draw := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	mean := float64(time.Minute) / rate
	for at := warmup + time.Duration(rng.ExpFloat64()*mean/2); at < end; at += time.Duration(rng.ExpFloat64() * mean) {
		if len(deck) == 0 {
			deck = append(deck, Kinds...)
			rng.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
		}
		for i, k := range deck {
			s := specs[k]
			if busy[s.resource] > at || at+s.min > end {
				continue
			}
			f := Fault{Kind: k, At: at, For: draw(s.min, min(s.max, end-at))}
			if s.targets > 0 {
				f.Target = rng.IntN(s.targets)
			}
			if k == StoreSlow {
				// Below the exporter's push timeout (2 s): slow, not failing.
				f.Delay = time.Duration(500+rng.IntN(1200)) * time.Millisecond
			}
			busy[s.resource] = f.End() + s.settle
			p.Faults = append(p.Faults, f)
			deck = append(deck[:i], deck[i+1:]...)
			break
		}
	}
	return p
}
