package kafka

import (
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// Batch is the records of one partition from one poll, in offset order. It
// is the unit of acknowledgement: its offsets become committable once every
// holder has released it. The consumer hands it out with one reference (the
// processor's); a sink that finishes later (Loki) retains it first and
// releases it when its own work is acknowledged.
type Batch struct {
	Topic     string
	Partition int32
	Records   []*kgo.Record

	refs   atomic.Int32
	done   atomic.Bool
	owner  *partition
	bytes  int64
	onDone func()
	span   trace.SpanContext
}

// SetSpanContext records the trace the batch is processed in, so sinks can
// link their own spans (a Loki push) to it.
func (b *Batch) SetSpanContext(sc trace.SpanContext) { b.span = sc }

// SpanContext is the batch's trace; invalid when it is not traced.
func (b *Batch) SpanContext() trace.SpanContext { return b.span }

// OnDone sets fn to run once the batch is committable (its last holder
// released it), e.g. to end the batch's trace span. Set it before handing
// the batch to anyone who may release it.
func (b *Batch) OnDone(fn func()) { b.onDone = fn }

// NewBatch is a batch outside any consumer, for processing records read
// some other way (benchmarks, tools): releasing it only runs OnDone.
func NewBatch(topic string, partition int32, recs []*kgo.Record) *Batch {
	b := &Batch{Topic: topic, Partition: partition, Records: recs}
	for _, r := range recs {
		b.bytes += int64(len(r.Value))
	}
	b.refs.Store(1)
	return b
}

// Retain adds a holder that must Release before the batch is committable.
func (b *Batch) Retain() { b.refs.Add(1) }

// Release drops one holder; the last one makes the batch committable.
func (b *Batch) Release() {
	if n := b.refs.Add(-1); n == 0 {
		b.done.Store(true)
		if b.owner != nil {
			b.owner.released(b)
		}
		if b.onDone != nil {
			b.onDone()
		}
	} else if n < 0 {
		panic("kafka: Batch released more often than retained")
	}
}

// Bytes is the size of the record values, as counted for the in-flight bound.
func (b *Batch) Bytes() int64 { return b.bytes }

// partition tracks what has been handed out for one assigned partition and
// how far the done prefix reaches. Batches finish in any order (a later
// batch's Loki push may be acknowledged first), so the committable offset is
// the end of the longest run of done batches from the oldest one.
type partition struct {
	topic  string
	id     int32
	worker int // the index of the worker that processes its batches

	mu        sync.Mutex
	queue     []*Batch // handed out, oldest first; done ones are popped from the head
	next      kgo.EpochOffset
	committed int64 // last offset committed; -1 when none this session
	first     int64 // first offset handed out this session; -1 before any
	fetched   int64 // one past the last offset handed out; -1 before any
	idle      chan struct{}
	onRelease func(*Batch)
}

func newPartition(topic string, id int32, onRelease func(*Batch)) *partition {
	return &partition{topic: topic, id: id, next: kgo.EpochOffset{Epoch: -1, Offset: -1}, committed: -1, first: -1, fetched: -1, onRelease: onRelease}
}

func (p *partition) begin(recs []*kgo.Record) *Batch {
	b := &Batch{Topic: p.topic, Partition: p.id, Records: recs, owner: p}
	for _, r := range recs {
		b.bytes += int64(len(r.Value))
	}
	b.refs.Store(1)
	p.mu.Lock()
	p.queue = append(p.queue, b)
	if p.first < 0 {
		p.first = recs[0].Offset
	}
	p.fetched = recs[len(recs)-1].Offset + 1
	p.mu.Unlock()
	return b
}

func (p *partition) released(b *Batch) {
	p.mu.Lock()
	i := 0
	for ; i < len(p.queue) && p.queue[i].done.Load(); i++ {
		last := p.queue[i].Records[len(p.queue[i].Records)-1]
		p.next = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
	}
	if i > 0 {
		n := copy(p.queue, p.queue[i:])
		clear(p.queue[n:])
		p.queue = p.queue[:n]
	}
	if len(p.queue) == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
	p.mu.Unlock()
	if p.onRelease != nil {
		p.onRelease(b)
	}
}

// abandon forgets b and anything begun after it: it was never handed to a
// worker, so it must not hold up draining; its records are read again by the
// partition's next owner because nothing past them was committed.
func (p *partition) abandon(b *Batch) {
	p.mu.Lock()
	for i, q := range p.queue {
		if q == b {
			clear(p.queue[i:])
			p.queue = p.queue[:i]
			break
		}
	}
	if len(p.queue) == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
	p.mu.Unlock()
}

// committable returns the offset to commit, and false when nothing new is done.
func (p *partition) committable() (kgo.EpochOffset, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next, p.next.Offset > p.committed
}

func (p *partition) markCommitted(o int64) {
	p.mu.Lock()
	if o > p.committed {
		p.committed = o
	}
	p.mu.Unlock()
}

// drained returns a channel closed once no batch is outstanding.
func (p *partition) drained() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	return p.idle
}

// pending is how many offsets were handed out and are not yet committable:
// the gap an outage of an acknowledging sink (Loki) makes grow.
func (p *partition) pending() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fetched < 0 {
		return 0
	}
	done := p.next.Offset
	if done < 0 {
		done = p.first
	}
	return p.fetched - done
}

func (p *partition) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// after is recs from the first offset not yet handed out this session:
// a follower's own fetch and the leader's records may overlap where it
// switches between them.
func (p *partition) after(recs []*kgo.Record) []*kgo.Record {
	p.mu.Lock()
	fetched := p.fetched
	p.mu.Unlock()
	i := 0
	for i < len(recs) && recs[i].Offset < fetched {
		i++
	}
	return recs[i:]
}
