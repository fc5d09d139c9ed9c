package loggen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxInFlight bounds the records handed to the client and not yet
// acknowledged. Each has its own buffer, reused once acknowledged, so memory
// stays flat whatever the rate; 8192 keeps several full batches per
// partition moving.
const maxInFlight = 8192

// flushTimeout bounds the wait for in-flight records after ctx has ended.
const flushTimeout = 10 * time.Second

// Produce writes lines from g to topic until limit lines (no limit when
// limit <= 0) or until ctx ends, at rate lines per second (as fast as the
// cluster takes them when rate <= 0). Records are keyed by g's machine
// (Hosts), so one machine's lines keep their order within a partition, and
// are produced asynchronously with at most 8192 in flight.
//
// At the end Produce waits for every record in flight. It returns the number
// of lines the cluster acknowledged and the first produce error; ctx ending
// is a normal stop, not an error. It stops at the first failed record. g must
// not be used by anyone else meanwhile; its Totals count what was generated,
// which equals what was acknowledged when the error is nil.
func Produce(ctx context.Context, cl *kgo.Client, topic string, g *Generator, rate float64, limit int64) (int64, error) {
	// Two contexts: the loop stops when the caller's ends, but records
	// already handed over are only failed (pctx) after a produce error;
	// kgo fails buffered records whose context ends.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pctx, pcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer pcancel()

	var (
		mu    sync.Mutex
		first error
		acked int64
		free  = make(chan *kgo.Record, maxInFlight)
	)
	for range maxInFlight {
		free <- &kgo.Record{Topic: topic, Value: make([]byte, 0, 512)}
	}
	promise := func(r *kgo.Record, err error) {
		mu.Lock()
		if err == nil {
			acked++
		} else if first == nil {
			first = fmt.Errorf("loggen: produce to %s partition %d: %w", topic, r.Partition, err)
			cancel()
			pcancel()
		}
		mu.Unlock()
		free <- r
	}

	p := newPacer(rate)
	for n := int64(0); limit <= 0 || n < limit; n++ {
		if err := p.wait(ctx); err != nil {
			break
		}
		var r *kgo.Record
		select {
		case r = <-free:
		case <-ctx.Done():
		}
		if r == nil {
			break
		}
		v := g.Next(r.Value[:0])
		*r = kgo.Record{Topic: topic, Key: g.key(), Value: v}
		cl.Produce(pctx, r, promise)
	}

	// ctx may be over: flush on a fresh, bounded context so that what is in
	// flight is still delivered (or failed) and counted.
	fctx, fcancel := context.WithTimeout(pctx, flushTimeout)
	defer fcancel()
	ferr := cl.Flush(fctx)

	mu.Lock()
	defer mu.Unlock()
	if first != nil {
		return acked, first
	}
	if ferr != nil {
		return acked, fmt.Errorf("loggen: flush to %s: %w", topic, ferr)
	}
	return acked, nil
}

// Write writes lines from g to w, each ended by '\n', until limit lines (no
// limit when limit <= 0) or until ctx ends, at rate lines per second (as fast
// as possible when rate <= 0). Output is buffered; when paced, the buffer is
// flushed whenever Write waits, so a reader sees lines as they are "logged".
// It returns the number of lines written; ctx ending is a normal stop.
func Write(ctx context.Context, w io.Writer, g *Generator, rate float64, limit int64) (int64, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	p := newPacer(rate)
	p.beforeSleep = bw.Flush
	buf := make([]byte, 0, 4096)
	var n int64
	for ; limit <= 0 || n < limit; n++ {
		if err := p.wait(ctx); err != nil {
			if errors.Is(err, errFlush) {
				return n, fmt.Errorf("loggen: write: %w", p.flushErr)
			}
			break
		}
		buf = append(g.Next(buf[:0]), '\n')
		if _, err := bw.Write(buf); err != nil {
			return n, fmt.Errorf("loggen: write: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("loggen: write: %w", err)
	}
	return n, nil
}

var errFlush = errors.New("flush before waiting")

// pacer is a token bucket: rate tokens a second, at most burst saved up, so
// that a stall (a slow broker, a full pipe) is not followed by an unbounded
// catch-up burst.
type pacer struct {
	rate        float64
	burst       float64
	tokens      float64
	last        time.Time
	timer       *time.Timer
	beforeSleep func() error
	flushErr    error
}

func newPacer(rate float64) *pacer {
	p := &pacer{rate: rate}
	if rate > 0 {
		// 10 ms worth of lines, at least one: smooth at low rates, and at
		// high rates sleeps long enough for the timer to be accurate.
		p.burst = max(1, rate/100)
	}
	return p
}

// wait takes one token, sleeping until there is one; it returns ctx's error
// when ctx ends first.
func (p *pacer) wait(ctx context.Context) error {
	if p.rate <= 0 {
		return ctx.Err()
	}
	now := time.Now()
	if p.last.IsZero() {
		p.last, p.tokens = now, 1
	}
	p.tokens = min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.rate)
	p.last = now
	if p.tokens >= 1 {
		p.tokens--
		return ctx.Err()
	}
	if p.beforeSleep != nil {
		if err := p.beforeSleep(); err != nil {
			p.flushErr = err
			return errFlush
		}
	}
	d := time.Duration((1 - p.tokens) / p.rate * float64(time.Second))
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.timer.C:
	}
	now = time.Now()
	p.tokens = min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.rate) - 1
	p.last = now
	return nil
}
