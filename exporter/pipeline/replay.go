package pipeline

import (
	"bytes"
	"errors"
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

// replayBuffer is how much of the input replay reads at once.
const replayBuffer = 1 << 20

func replayReader(h *handler, name string, r io.Reader, sum *ReplaySummary) error {
	lr := newLineReader(r, replayBuffer)
	var n int64
	var now time.Time
	for {
		line, read, err := lr.next()
		// The clock is read once per buffer of lines, as the Kafka path
		// reads it once per batch: reading it per line was a tenth of
		// replay's CPU. A read may have waited (a pipe), so the clock is
		// read again after one.
		if read || n%replayClockLines == 0 {
			now = time.Now()
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
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

// lineReader splits its input into lines in one buffer. bufio.Reader's
// ReadSlice did the same in about 90 instructions a line besides the
// byte search, which is what next costs when the line is buffered.
type lineReader struct {
	r        io.Reader
	buf      []byte
	pos, end int   // buf[pos:end] is read and not yet returned
	err      error // the reader's, once buf[pos:end] holds no whole line
	long     []byte
}

func newLineReader(r io.Reader, size int) *lineReader {
	return &lineReader{r: r, buf: make([]byte, size)}
}

// next returns the next line with its '\n' (the last line may have none),
// and whether it read from the input, which may have waited. The line is
// valid until the next call. With the input's end or error, err is io.EOF
// or that error, and line is what was read before it (maybe nothing).
func (lr *lineReader) next() (line []byte, read bool, err error) {
	if i := bytes.IndexByte(lr.buf[lr.pos:lr.end], '\n'); i >= 0 {
		line = lr.buf[lr.pos : lr.pos+i+1]
		lr.pos += i + 1
		return line, false, nil
	}
	return lr.fill()
}

// fill is next when no whole line is buffered: it reads until one is, the
// buffer is full (a line longer than it is gathered in long), or the
// input ends.
func (lr *lineReader) fill() ([]byte, bool, error) {
	lr.long = lr.long[:0]
	read := false
	for {
		if lr.err != nil {
			// What is left is the last line, without its '\n'.
			line := lr.buf[lr.pos:lr.end]
			lr.pos = lr.end
			if len(lr.long) > 0 {
				line = append(lr.long, line...)
				lr.long = line
			}
			err := lr.err
			return line, read, err
		}
		if lr.end == len(lr.buf) {
			if lr.pos == 0 {
				lr.long = append(lr.long, lr.buf...)
				lr.end = 0
			} else {
				lr.end = copy(lr.buf, lr.buf[lr.pos:lr.end])
				lr.pos = 0
			}
		}
		from := lr.end
		m, err := lr.read()
		read = true
		lr.end += m
		lr.err = err
		if i := bytes.IndexByte(lr.buf[from:lr.end], '\n'); i >= 0 {
			end := from + i + 1
			line := lr.buf[lr.pos:end]
			lr.pos = end
			if len(lr.long) > 0 {
				line = append(lr.long, line...)
				lr.long = line
			}
			return line, read, nil
		}
	}
}

// read reads into buf[end:], as bufio does: a reader that returns nothing
// a hundred times in a row is an error.
func (lr *lineReader) read() (int, error) {
	for range 100 {
		m, err := lr.r.Read(lr.buf[lr.end:])
		if m < 0 || m > len(lr.buf)-lr.end {
			return 0, errors.New("replay: reader returned an invalid count")
		}
		if m > 0 || err != nil {
			return m, err
		}
	}
	return 0, io.ErrNoProgress
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
