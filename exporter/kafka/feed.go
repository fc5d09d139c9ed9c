package kafka

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Feed hands the records one member of a process fetched (the leader: the
// metrics member) to another member of the same process that consumes the
// same topics in its own group (the follower: the log member), so that
// while both keep up a record is fetched and decompressed once, not once
// per member.
//
// The follower follows a partition it owns while it is in step: when it
// has handed out a batch ending at or past where the leader's next fetch
// of that partition starts. It then pauses its own fetch of the partition
// and takes the leader's records from its next offset on, in order. It
// stops following, and fetches the partition itself again from its own
// next offset (Client.SetOffsets, then a resume), when it falls behind
// (more than the feed's budget of records waits for it: a slow or down log
// store), when the leader loses the partition, or when the leader's
// records skip the offset it needs (the leader was set back by a
// rebalance, say), and when nothing came from the leader for a while (a
// quiet partition, or a leader that is stuck: the log path must not stop
// with the metrics path). The follower commits as before, what its own sink has
// released: the records' origin does not change what a commit means.
//
// The leader offers a batch once its processor has handled it, so the
// follower gets records whose decode the leader has already shared with
// it (pipeline's shared window), in the order the leader's worker handled
// them. The leader never waits for the follower: an offer only appends to
// a queue under a short lock, and beyond the budget the follower is
// stopped instead.
type Feed struct {
	mu     sync.Mutex
	parts  map[tp]*feedPart
	budget int64 // record bytes queued for the follower, all partitions together
	queued int64
	quiet  time.Duration // no offer this long stops following
	wake   func()        // wakes the follower's poll; nil until it polls
}

type feedPart struct {
	led      bool  // the leader owns the partition
	leadNext int64 // one past the last offset the leader offered; -1 before any

	following bool
	stopped   bool // following ended: the follower takes the queue, then fetches itself from want
	reason    string
	want      int64     // the follower's next offset: one past what it handed out or has queued
	since     time.Time // when following began or the last records were queued
	queue     [][]*kgo.Record
	bytes     int64
}

// NewFeed is a feed that holds at most budget record bytes for the
// follower; 0 means 8 MiB.
func NewFeed(budget int64) *Feed {
	if budget <= 0 {
		budget = 8 << 20
	}
	return &Feed{parts: map[tp]*feedPart{}, budget: budget, quiet: feedQuiet}
}

// feedQuiet is how long a followed partition may go without records from
// the leader. Records come every fetch wait (250ms by default) while the
// partition has traffic; a quiet partition is fetched by the follower
// itself again every so often, which costs a fetch session restart.
const feedQuiet = 5 * time.Second

func (f *Feed) part(k tp) *feedPart {
	p := f.parts[k]
	if p == nil {
		p = &feedPart{leadNext: -1}
		f.parts[k] = p
	}
	return p
}

// lead says the leader owns the partitions now; its first offer sets
// where it is.
func (f *Feed) lead(assigned map[string][]int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for topic, ps := range assigned {
		for _, id := range ps {
			p := f.part(tp{topic, id})
			p.led, p.leadNext = true, -1
		}
	}
}

// unlead says the leader no longer owns the partitions (revoked, lost, or
// it stopped): a follower of one of them fetches it itself again.
func (f *Feed) unlead(parts []*partition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, pt := range parts {
		if p := f.parts[tp{pt.topic, pt.id}]; p != nil {
			p.led, p.leadNext = false, -1
			f.stop(p, "leader_gone")
		}
	}
}

// offer is the leader's side: recs were fetched for the partition, in
// offset order.
func (f *Feed) offer(topic string, id int32, recs []*kgo.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.parts[tp{topic, id}]
	if p == nil || !p.led {
		return
	}
	p.leadNext = recs[len(recs)-1].Offset + 1
	if !p.following || p.stopped {
		return
	}
	i := 0
	for i < len(recs) && recs[i].Offset < p.want {
		i++
	}
	recs = recs[i:]
	switch {
	case len(recs) == 0:
		return
	case recs[0].Offset != p.want:
		f.stop(p, "gap")
		return
	}
	n := valueBytes(recs)
	if f.queued+n > f.budget {
		f.stop(p, "behind")
		return
	}
	p.queue = append(p.queue, recs)
	p.bytes += n
	f.queued += n
	p.want = recs[len(recs)-1].Offset + 1
	p.since = time.Now()
	f.wakeFollower()
}

// stop ends following p; called with f.mu held.
func (f *Feed) stop(p *feedPart, reason string) {
	if p.following && !p.stopped {
		p.stopped, p.reason = true, reason
		f.wakeFollower()
	}
}

func (f *Feed) wakeFollower() {
	if f.wake != nil {
		f.wake()
	}
}

// follow is the follower's side, after it handed out records of the
// partition up to next: it follows from next when the leader's next
// records start there or before, and says whether it does.
func (f *Feed) follow(k tp, next int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.parts[k]
	if p == nil || !p.led || p.following || p.leadNext < 0 || p.leadNext > next {
		return false
	}
	p.following, p.stopped, p.want, p.since = true, false, next, time.Now()
	return true
}

// fed is what the follower takes: a partition's records, or, with resume,
// the offset to fetch it itself from again.
type fed struct {
	k      tp
	recs   []*kgo.Record
	resume bool
	at     int64
	reason string
}

// take moves the queued records out, oldest first per partition, and
// after a stopped partition's last records says where to resume it.
func (f *Feed) take(out []fed, now time.Time) []fed {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, p := range f.parts {
		if !p.following {
			continue
		}
		if len(p.queue) == 0 && now.Sub(p.since) > f.quiet {
			f.stop(p, "quiet")
		}
		for _, recs := range p.queue {
			out = append(out, fed{k: k, recs: recs})
		}
		f.empty(p)
		if p.stopped {
			out = append(out, fed{k: k, resume: true, at: p.want, reason: p.reason})
			p.following, p.stopped = false, false
		}
	}
	return out
}

// unfollow forgets the follower's state of a partition it no longer owns.
func (f *Feed) unfollow(k tp) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.parts[k]; p != nil && p.following {
		f.empty(p)
		p.following, p.stopped = false, false
	}
}

// empty drops p's queue from the budget; called with f.mu held.
func (f *Feed) empty(p *feedPart) {
	clear(p.queue)
	p.queue = p.queue[:0]
	f.queued -= p.bytes
	p.bytes = 0
}

func (f *Feed) setWake(wake func()) {
	f.mu.Lock()
	f.wake = wake
	f.mu.Unlock()
}

func valueBytes(recs []*kgo.Record) (n int64) {
	for _, r := range recs {
		n += int64(len(r.Value))
	}
	return n
}

// waker ends the follower's blocking poll when the feed has something for
// it, since its own fetch of a followed partition is paused and would not.
type waker struct {
	mu      sync.Mutex
	cancel  context.CancelFunc
	pending bool
}

// arm is the context of the next poll: ended by wake, or after at most
// d (0: no limit). A wake that came while no poll was armed gives a poll
// that only takes what is buffered (a moment, not a canceled context, or
// the own-fetched partitions would never be taken while the feed is busy).
func (w *waker) arm(parent context.Context, d time.Duration) context.Context {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ctx context.Context
	switch {
	case w.pending:
		w.pending = false
		ctx, w.cancel = context.WithTimeout(parent, time.Millisecond)
	case d > 0:
		ctx, w.cancel = context.WithTimeout(parent, d)
	default:
		ctx, w.cancel = context.WithCancel(parent)
	}
	return ctx
}

func (w *waker) disarm() {
	w.mu.Lock()
	if w.cancel != nil {
		w.cancel()
		w.cancel = nil
	}
	w.mu.Unlock()
}

func (w *waker) wake() {
	w.mu.Lock()
	if w.cancel != nil {
		w.cancel()
		w.cancel = nil
	} else {
		w.pending = true
	}
	w.mu.Unlock()
}
