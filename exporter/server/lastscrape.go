package server

import (
	"context"
	"sync"
	"time"
)

// scrapes remembers the freshest /metrics body served in full and when the
// recent ones were served, so that a graceful stop can wait for one scrape
// that saw the final counts: counts made after the last scrape and
// committed before the exit are otherwise never seen by Prometheus, and
// the next replica does not count them again.
type scrapes struct {
	mu     sync.Mutex
	latest time.Time     // gather start of the freshest body served in full
	recent []time.Time   // when the last few full scrapes were served, oldest first
	next   chan struct{} // closed and replaced on every full scrape
}

// keptScrapes is how many serve times estimate the scrape interval: enough
// to see the longer gap of two scrapers (an HA pair of Prometheus servers)
// that interleave.
const keptScrapes = 8

func (s *scrapes) served(gathered time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gathered.After(s.latest) {
		s.latest = gathered
	}
	if len(s.recent) == keptScrapes {
		s.recent = append(s.recent[:0], s.recent[1:]...)
	}
	s.recent = append(s.recent, time.Now())
	if s.next != nil {
		close(s.next)
		s.next = nil
	}
}

// expected is when the next scrape should have come by: the last one plus
// twice the longest recent gap. Zero when no scrape is expected: nothing
// ever scraped, or one scrape only (a person, not a scraper).
func (s *scrapes) expected() time.Time {
	if len(s.recent) < 2 {
		return time.Time{}
	}
	var gap time.Duration
	for i := 1; i < len(s.recent); i++ {
		gap = max(gap, s.recent[i].Sub(s.recent[i-1]))
	}
	return s.recent[len(s.recent)-1].Add(2 * gap)
}

// Scraped says when the freshest /metrics body served in full was
// gathered, and whether this process is scraped regularly: at least two
// full scrapes, and the next one not overdue (see expected).
func (s *Server) Scraped() (gathered time.Time, regular bool) {
	s.scrapes.mu.Lock()
	defer s.scrapes.mu.Unlock()
	by := s.scrapes.expected()
	return s.scrapes.latest, !by.IsZero() && time.Now().Before(by)
}

// WaitScrape waits until a full scrape of the metrics path gathered at or
// after since has been written, and says whether one was. It gives up when
// ctx ends, and does not wait for a scrape that is not expected: when
// nothing scraped this process regularly (a run by hand, a person with a
// browser) or the scrapes stopped coming (none within twice their longest
// recent interval).
func (s *Server) WaitScrape(ctx context.Context, since time.Time) bool {
	for {
		s.scrapes.mu.Lock()
		if !s.scrapes.latest.Before(since) {
			s.scrapes.mu.Unlock()
			return true
		}
		by := s.scrapes.expected()
		if s.scrapes.next == nil {
			s.scrapes.next = make(chan struct{})
		}
		next := s.scrapes.next
		s.scrapes.mu.Unlock()
		wait := time.Until(by)
		if wait <= 0 {
			return false
		}
		t := time.NewTimer(wait)
		select {
		case <-next:
			t.Stop()
		case <-t.C:
			return false
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}
