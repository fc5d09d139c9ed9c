package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxHeld bounds the snapshots kept waiting for a scrape: at the default
// commit interval, minutes of them, more than a scrape interval and the
// two missed scrapes after which commits no longer wait; past it they thin.
const maxHeld = 512

// held keeps the metrics member's commit snapshots until a scrape has shown
// what they count. Prometheus sees a count only when it scrapes it; an
// offset committed before that scrape is never counted again after a
// SIGKILL, so its lines would be lost to every query.
type held struct {
	snaps []heldSnap
}

type heldSnap struct {
	at   time.Time // taken after the offsets were read: they were counted by then
	offs map[*partition]kgo.EpochOffset
}

// next takes the snapshot offs, read just before at, and returns what may
// be committed now: offs itself when the process is not scraped regularly
// (run by hand, scrapes stopped), else the newest snapshot taken before the
// gather of the freshest scrape served, or nil.
func (h *held) next(at time.Time, offs map[*partition]kgo.EpochOffset, gathered time.Time, regular bool) map[*partition]kgo.EpochOffset {
	if !regular {
		clear(h.snaps)
		h.snaps = h.snaps[:0]
		return offs
	}
	if len(offs) > 0 {
		if len(h.snaps) == maxHeld {
			// Every other one goes, the newest stays: the time they span
			// doubles, so a slow scraper's gather still finds one before it.
			n := 0
			for i := len(h.snaps) - 1; i >= 0; i -= 2 {
				n++
				h.snaps[len(h.snaps)-n] = h.snaps[i]
			}
			m := copy(h.snaps, h.snaps[len(h.snaps)-n:])
			clear(h.snaps[m:])
			h.snaps = h.snaps[:m]
		}
		h.snaps = append(h.snaps, heldSnap{at: at, offs: offs})
	}
	i := -1
	for j, s := range h.snaps {
		if s.at.After(gathered) {
			break
		}
		i = j
	}
	if i < 0 {
		return nil
	}
	// A partition missing from it had nothing new done since its last
	// commit, so no older snapshot has it further.
	out := h.snaps[i].offs
	n := copy(h.snaps, h.snaps[i+1:])
	clear(h.snaps[n:])
	h.snaps = h.snaps[:n]
	return out
}
