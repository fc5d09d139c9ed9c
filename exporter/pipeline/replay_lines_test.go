package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// stutterReader returns nothing, without an error, before every read.
type stutterReader struct {
	r    io.Reader
	idle bool
}

func (s *stutterReader) Read(p []byte) (int, error) {
	if s.idle = !s.idle; s.idle {
		return 0, nil
	}
	return s.r.Read(p)
}

// TestLineReader checks lineReader's lines against the input split after
// each '\n', with buffers smaller than the lines, readers that return a
// byte at a time, data with io.EOF, nothing at all, and an error.
func TestLineReader(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var random strings.Builder
	for range 300 {
		random.WriteString(strings.Repeat("x", rng.IntN(40)))
		random.WriteByte('\n')
	}
	inputs := []string{"", "\n", "\n\n", "a", "a\n", "a\nb", "a\nb\n", "abcdefghijklmnopqrstuvwxyz\nb\n\nccc", strings.Repeat("y", 100), strings.Repeat("y", 100) + "\n" + strings.Repeat("z", 33), random.String()}
	wrappers := map[string]func(io.Reader) io.Reader{
		"plain":   func(r io.Reader) io.Reader { return r },
		"onebyte": iotest.OneByteReader,
		"half":    iotest.HalfReader,
		"dataerr": iotest.DataErrReader,
		"stutter": func(r io.Reader) io.Reader { return &stutterReader{r: r} },
	}
	boom := errors.New("boom")
	bad := 0
	for _, in := range inputs {
		want := bytes.SplitAfter([]byte(in), []byte("\n"))
		if len(want[len(want)-1]) == 0 {
			want = want[:len(want)-1]
		}
		for wname, wrap := range wrappers {
			for _, size := range []int{1, 2, 3, 7, 16, 64, 1 << 10} {
				for _, fail := range []bool{false, true} {
					var r io.Reader = bytes.NewReader([]byte(in))
					wantErr := io.EOF
					if fail {
						r, wantErr = io.MultiReader(r, iotest.ErrReader(boom)), boom
					}
					lr := newLineReader(wrap(r), size)
					var got [][]byte
					var err error
					for range 10000 {
						var line []byte
						line, _, err = lr.next()
						if len(line) > 0 {
							got = append(got, bytes.Clone(line))
						}
						if err != nil {
							break
						}
					}
					if err != wantErr || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
						bad++
						if bad <= 10 {
							t.Errorf("%q through %s, buffer %d, fail %v: lines %q, err %v; want %q, %v", in, wname, size, fail, got, err, want, wantErr)
						}
					}
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d cases differ", bad)
	}
}

// TestLineReaderNoProgress: a reader that never returns anything is an
// error, as with bufio.
func TestLineReaderNoProgress(t *testing.T) {
	lr := newLineReader(iotest.OneByteReader(eternalNothing{}), 16)
	if line, _, err := lr.next(); err != io.ErrNoProgress || len(line) != 0 {
		t.Errorf("next = %q, %v; want nothing, io.ErrNoProgress", line, err)
	}
}

type eternalNothing struct{}

func (eternalNothing) Read([]byte) (int, error) { return 0, nil }
