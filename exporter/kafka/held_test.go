package kafka

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

func TestHeldCommitsWhatAScrapeGathered(t *testing.T) {
	p := newPartition("t", 0, nil)
	at := func(s int) time.Time { return time.Unix(1000+int64(s), 0) }
	snap := func(o int64) map[*partition]kgo.EpochOffset {
		return map[*partition]kgo.EpochOffset{p: {Epoch: 1, Offset: o}}
	}
	var h held
	var got []string
	check := func(out map[*partition]kgo.EpochOffset, want int64) {
		t.Helper()
		o, ok := out[p]
		switch {
		case want < 0 && ok:
			got = append(got, fmt.Sprintf("committed %d, want nothing", o.Offset))
		case want >= 0 && (!ok || o.Offset != want):
			got = append(got, fmt.Sprintf("committed %d (%v), want %d", o.Offset, ok, want))
		}
	}
	// Scraped regularly, last gather at 1000: nothing counted by then.
	check(h.next(at(1), snap(10), at(0), true), -1)
	check(h.next(at(2), snap(20), at(0), true), -1)
	// A scrape gathered at 2.5 showed 20; 30 (read before 3) waits.
	check(h.next(at(3), snap(30), at(2).Add(time.Second/2), true), 20)
	// An older gather than the last commit commits nothing again.
	check(h.next(at(4), snap(40), at(2), true), -1)
	// The scrapes stop: commits go on unheld, and nothing held is left over.
	check(h.next(at(5), snap(50), at(2), false), 50)
	if len(h.snaps) != 0 {
		got = append(got, fmt.Sprintf("%d snapshots held after the scrapes stopped", len(h.snaps)))
	}
	// Past the bound they thin out: a slow scraper's gather still finds one
	// just before it, and the newest is kept.
	for i := range maxHeld + 10 {
		check(h.next(at(10+i), snap(int64(100+i)), at(0), true), -1)
	}
	if len(h.snaps) > maxHeld || h.snaps[0].at.After(at(11)) {
		got = append(got, fmt.Sprintf("held %d snapshots from %v, want at most %d from the first ones", len(h.snaps), h.snaps[0].at, maxHeld))
	}
	if o := h.next(at(10+maxHeld+10), snap(int64(100+maxHeld+10)), at(20), true)[p]; o.Offset < 108 || o.Offset > 110 {
		got = append(got, fmt.Sprintf("a gather at 20 s committed %d, want 108 to 110", o.Offset))
	}
	check(h.next(at(10+maxHeld+11), snap(int64(100+maxHeld+11)), at(10+maxHeld+11), true), int64(100+maxHeld+11))
	for _, g := range got {
		t.Error(g)
	}
}

// scrapeClock stands for the HTTP server's record of scrapes.
type scrapeClock struct {
	mu       sync.Mutex
	gathered time.Time
	regular  bool
	asked    atomic.Int64
}

func (s *scrapeClock) scraped() (time.Time, bool) {
	s.asked.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gathered, s.regular
}

func (s *scrapeClock) set(gathered time.Time, regular bool) {
	s.mu.Lock()
	s.gathered, s.regular = gathered, regular
	s.mu.Unlock()
}

// TestCommitsWaitForAScrape: while the process is scraped regularly, what
// was counted after the freshest scrape's gather is not committed; once a
// scrape gathers it, it is; without regular scrapes commits do not wait.
func TestCommitsWaitForAScrape(t *testing.T) {
	c := testbed.Cluster(t)
	const n = 2000
	produce(t, c, 0, n)
	clock := &scrapeClock{regular: true, gathered: time.Now()}
	cnt := newCounter()
	startWith(t, testConfig(c, "g-scraped"), Options{NewProcessor: cnt.processor, ExtraOpts: fastGroup, Scraped: clock.scraped, ShutdownTimeout: 5 * time.Second})

	testbed.WaitFor(t, "all records counted", 20*time.Second, func() bool { return cnt.total.Load() >= n })
	// Several commit ticks after everything was counted, none committed it.
	from := clock.asked.Load()
	testbed.WaitFor(t, "five commit ticks", 20*time.Second, func() bool { return clock.asked.Load() >= from+5 })
	if commit, _ := committed(t, c, "g-scraped"); commit != 0 {
		t.Fatalf("committed %d offsets before any scrape gathered them, want 0", commit)
	}
	clock.set(time.Now(), true)
	testbed.WaitFor(t, "commits of what the scrape gathered", 20*time.Second, func() bool {
		commit, end := committed(t, c, "g-scraped")
		return commit == end && end == n
	})

	produce(t, c, n, n)
	clock.set(time.Time{}, false)
	testbed.WaitFor(t, "commits without regular scrapes", 20*time.Second, func() bool {
		commit, end := committed(t, c, "g-scraped")
		return commit == end && end == 2*n
	})
}
