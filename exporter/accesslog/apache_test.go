package accesslog

import (
	"bufio"
	"compress/gzip"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestApacheCombined parses 10,000 real Apache combined-format lines (a
// public sample from 2015) with the combined preset and checks the totals
// against a deliberately naive reference that splits each line on '"'.
//
// What the sample shows:
//   - 9,999 lines parse. Line 8,899 ends inside the user agent, its closing
//     quote missing (the sample was cut there): unterminated_quote, which
//     the reference also rejects (it finds 5 quotes, not 6).
//   - 669 lines log the body size as "-" (Apache's %b for an empty body;
//     nginx writes 0): BodyBytes -1, counted as 0 by both sides.
//   - Three referers carry \xHH escapes of non-ASCII bytes. Apache writes
//     those as nginx does; it would write a '"' as \" where nginx writes
//     \x22, which would end a quoted field early here, but the sample has
//     no such line.
func TestApacheCombined(t *testing.T) {
	fh, err := os.Open("testdata/apache-combined-10k.log.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	gz, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	f := mustCompile(t, "combined", "combined", EscapeDefault)

	type totals struct {
		lines, parsed, statusSum int
		bytes                    int64
		byStatus                 map[int]int
		byMethod                 map[string]int
	}
	got := totals{byStatus: map[int]int{}, byMethod: map[string]int{}}
	want := totals{byStatus: map[int]int{}, byMethod: map[string]int{}}
	var failed []string

	var r Record
	sc := bufio.NewScanner(gz)
	for sc.Scan() {
		line := sc.Text()
		got.lines++
		want.lines++

		if err := f.Parse(sc.Bytes(), &r); err != nil {
			failed = append(failed, strconv.Itoa(got.lines)+": "+err.Error())
		} else {
			got.parsed++
			got.statusSum += r.Status
			got.byStatus[r.Status]++
			got.byMethod[string(r.Method)]++
			if r.BodyBytes > 0 {
				got.bytes += r.BodyBytes
			}
		}

		// The reference: `ip - user [time] "request" status bytes "referer" "agent"`.
		parts := strings.Split(line, `"`)
		if len(parts) != 7 || parts[6] != "" {
			continue
		}
		mid := strings.Fields(parts[2])
		if len(mid) != 2 {
			continue
		}
		st, err := strconv.Atoi(mid[0])
		if err != nil {
			continue
		}
		want.parsed++
		want.statusSum += st
		want.byStatus[st]++
		method, _, _ := strings.Cut(parts[1], " ")
		want.byMethod[method]++
		if n, err := strconv.ParseInt(mid[1], 10, 64); err == nil {
			want.bytes += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	if got.lines != 10000 || got.parsed != 9999 {
		t.Errorf("%d lines, %d parsed; want 10000, 9999. Failures: %v", got.lines, got.parsed, failed)
	}
	if len(failed) != 1 || !strings.HasPrefix(failed[0], "8899: byte ") || !strings.Contains(failed[0], "closing quote") {
		t.Errorf("failures: %v", failed)
	}
	if got.parsed != want.parsed || got.statusSum != want.statusSum || got.bytes != want.bytes {
		t.Errorf("parsed/status sum/bytes = %d/%d/%d, reference %d/%d/%d",
			got.parsed, got.statusSum, got.bytes, want.parsed, want.statusSum, want.bytes)
	}
	for st, n := range want.byStatus {
		if got.byStatus[st] != n {
			t.Errorf("status %d: %d lines, reference %d", st, got.byStatus[st], n)
		}
	}
	for m, n := range want.byMethod {
		if got.byMethod[m] != n {
			t.Errorf("method %q: %d lines, reference %d", m, got.byMethod[m], n)
		}
	}
	t.Logf("parsed %d of %d; status sum %d; %d body bytes; statuses %v; methods %v",
		got.parsed, got.lines, got.statusSum, got.bytes, got.byStatus, got.byMethod)
}
