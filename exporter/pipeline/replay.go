package pipeline

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// maxFailures is how many failing lines replay lists; the counts by reason
// cover the rest.
const maxFailures = 10

// ReplaySummary is what a replay saw.
type ReplaySummary struct {
	Lines, Parsed, Failed int64
	ByReason              map[string]int64
	Failures              []Failure // the first maxFailures
	Elapsed               time.Duration
}

// Failure is one line that did not parse.
type Failure struct {
	File   string
	Line   int64
	Reason string
	Offset int
	Err    string
}

// Replay runs every line of files (stdin when none is given) through the
// same decode, parse and metrics path as Kafka records, writes the resulting
// metrics in the Prometheus text format to out, and returns a summary.
func Replay(cfg *config.Config, files []string, stdin io.Reader, out io.Writer) (*ReplaySummary, error) {
	reg := prometheus.NewRegistry()
	l, err := newLive(cfg, reg)
	if err != nil {
		return nil, err
	}
	self, err := newSelfMetrics(reg)
	if err != nil {
		return nil, err
	}
	h := newHandler(l.load(), self)
	sum := &ReplaySummary{ByReason: map[string]int64{}}
	start := time.Now()
	if len(files) == 0 {
		if err := replayReader(h, "<stdin>", stdin, sum); err != nil {
			return nil, err
		}
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		err = replayReader(h, name, f, sum)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	sum.Elapsed = time.Since(start)
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	enc := expfmt.NewEncoder(out, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

// replayClockLines bounds how many lines share one reading of the clock
// when the input never runs dry: 1 ms of lines at a million a second.
const replayClockLines = 1024

func replayReader(h *handler, name string, r io.Reader, sum *ReplaySummary) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var long []byte
	var n int64
	var now time.Time
	for {
		// The clock is read once per buffer of lines, as the Kafka path
		// reads it once per batch: reading it per line was a tenth of
		// replay's CPU. A read that found the buffer empty may have
		// waited (a pipe), so the clock is read again after it.
		refill := br.Buffered() == 0
		line, err := br.ReadSlice('\n')
		if refill || n%replayClockLines == 0 {
			now = time.Now()
		}
		// ReadSlice returns its sentinel as is: a comparison, not
		// errors.Is, whose call was about 30 instructions a line.
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: gather it whole, rarely.
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			n++
			sum.Lines++
			if pe := h.handle(line, now); pe != nil {
				sum.Failed++
				sum.ByReason[pe.Reason.String()]++
				if len(sum.Failures) < maxFailures {
					sum.Failures = append(sum.Failures, Failure{File: name, Line: n, Reason: pe.Reason.String(), Offset: pe.Offset, Err: pe.Error()})
				}
			} else {
				sum.Parsed++
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

// WriteSummary renders s for a person reading stderr.
func (s *ReplaySummary) WriteSummary(w io.Writer) {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Lines) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "replay: %d lines, %d parsed, %d failed in %v (%.0f lines/s)\n", s.Lines, s.Parsed, s.Failed, s.Elapsed.Round(time.Millisecond), rate)
	if s.Failed == 0 {
		return
	}
	reasons := make([]string, 0, len(s.ByReason))
	for r := range s.ByReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	fmt.Fprintln(w, "failed by reason:")
	for _, r := range reasons {
		fmt.Fprintf(w, "  %-20s %d\n", r, s.ByReason[r])
	}
	fmt.Fprintf(w, "first %d failures:\n", len(s.Failures))
	for _, f := range s.Failures {
		fmt.Fprintf(w, "  %s:%d: %s: %s\n", f.File, f.Line, f.Reason, f.Err)
	}
}
