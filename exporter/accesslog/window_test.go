package accesslog

import (
	"strings"
	"testing"
)

// Times outside 1970 to 2199 fail with bad_time instead of wrapping: a line
// dated 9999 used to count as parsed and reach the log store stamped 1816
// (issue 13, defect 7). TestTimes has the parser's cases.
func TestTimeWindow(t *testing.T) {
	// The date cache: the date is known good, the time of day takes it out.
	var r Record
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"31/Dec/2199:22:00:00 -0100", true},
		{"31/Dec/2199:23:30:00 -0100", false},
		{"01/Jan/1970:01:00:00 +0100", true},
		{"01/Jan/1970:00:59:59 +0100", false},
	} {
		if _, ok := r.parseTime([]byte(tc.in)); ok != tc.ok {
			t.Errorf("cached parseTime(%q) ok = %v, want %v", tc.in, ok, tc.ok)
		}
	}
}

func TestTimeWindowLines(t *testing.T) {
	mainFmt := mustCompile(t, "main", "main", EscapeDefault)
	jsonFmt := mustCompile(t, "json", "json", EscapeJSON)
	d, err := NewDecoder(DecoderConfig{Default: mainFmt})
	if err != nil {
		t.Fatal(err)
	}
	line := `10.0.0.1 - - [10/Oct/9999:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "-" "-"`
	good := `10.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "-" "-"`
	var r Record
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"main line dated 9999", func() error { return mainFmt.Parse([]byte(line), &r) },
			`bad_time var=time_local offset=14: byte 14: $time_local: want a time, got "10/Oct/9999:13:55:36 +0000"`},
		{"JSON line dated 9999", func() error {
			return jsonFmt.Parse([]byte(`{"time":"9999-10-10T13:55:36+00:00","status":"200"}`), &r)
		}, `bad_time var=time_iso8601 offset=9: byte 9: $time_iso8601: want a time, got "9999-10-10T13:55:36+00:00"`},
		{"JSON msec past 2262", func() error {
			return jsonFmt.Parse([]byte(`{"msec":"99999999999.123","status":"200"}`), &r)
		}, `bad_time var=msec offset=9: byte 9: $msec: want a time, got "99999999999.123"`},
		{"envelope @timestamp 9999", func() error {
			return d.Decode([]byte(`{"@timestamp":"9999-12-31T23:59:59.000Z","message":"`+strings.ReplaceAll(good, `"`, `\"`)+`"}`), &r)
		}, `bad_time var=@timestamp offset=0: byte 0: @timestamp: want an RFC 3339 time from 1970 to 2199, got "9999-12-31T23:59:59.000Z"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errSummary(tc.run()); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if !r.Time.IsZero() || !r.Timestamp.IsZero() {
				t.Errorf("a failed time is kept: Time %v, Timestamp %v", r.Time, r.Timestamp)
			}
		})
	}
}

// A JSON object is not a request unless it logs a status: "{}" and unrelated
// objects used to count with every label unknown (issue 13, defect 8).
func TestJSONNeedsStatus(t *testing.T) {
	jsonFmt := mustCompile(t, "json", "json", EscapeJSON)
	custom := mustCompile(t, "custom", `{"code":"$status","uri":"$request_uri"}`, EscapeJSON)
	d, err := NewDecoder(DecoderConfig{Default: jsonFmt})
	if err != nil {
		t.Fatal(err)
	}
	var r Record
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"empty object", func() error { return jsonFmt.Parse([]byte(`{}`), &r) },
			`missing_field var=status offset=0: byte 0: $status: want a key holding it, got "{}"`},
		{"unrelated object", func() error { return jsonFmt.Parse([]byte(`{"user":"alice","action":"login"}`), &r) },
			`missing_field var=status offset=0: byte 0: $status: want a key holding it, got "{\"user\":\"alice\",\"action\":\"login\"}"`},
		{"null status", func() error { return jsonFmt.Parse([]byte(`{"status":null,"request":"GET / HTTP/1.1"}`), &r) },
			`missing_field var=status offset=0: byte 0: $status: want a key holding it, got "{\"status\":null,\"request\":\"GET / HTTP/1.1"`},
		{"template key missing", func() error { return custom.Parse([]byte(`{"uri":"/a"}`), &r) },
			`missing_field var=status offset=0: byte 0: $status: want a key holding it, got "{\"uri\":\"/a\"}"`},
		{"template key", func() error { return custom.Parse([]byte(`{"code":204,"uri":"/a"}`), &r) }, ""},
		{"default key mapping", func() error { return custom.Parse([]byte(`{"status":"204"}`), &r) }, ""},
		{"raw record through the decoder", func() error { return d.Decode([]byte(`{}`), &r) },
			`missing_field var=status offset=0: byte 0: $status: want a key holding it, got "{}"`},
		{"envelope carrying an empty object", func() error { return d.Decode([]byte(`{"message":"{}"}`), &r) },
			`missing_field var=status offset=0: byte 0: $status: want a key holding it, got "{}"`},
		{"JSON default: a numeric message is a field", func() error { return d.Decode([]byte(`{"message":42,"status":200}`), &r) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errSummary(tc.run()); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
