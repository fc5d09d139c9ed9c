package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	const mt = "main_timed"
	tests := []struct {
		name   string
		format string
		escape Escape
		line   string
		want   string
	}{
		{
			name:   "combined, ordinary GET",
			format: "combined",
			line:   `203.0.113.7 - - [10/Oct/2025:13:55:36 +0200] "GET /index.html HTTP/1.1" 200 612 "-" "curl/8.5.0"`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="203.0.113.7" method="GET" path="/index.html" proto="HTTP/1.1" status=200 body=612`,
		},
		{
			name:   "combined, query kept apart",
			format: "combined",
			line:   `203.0.113.7 - bob [10/Oct/2025:13:55:36 -0500] "POST /api/v1/items?page=2&sort=asc HTTP/2.0" 201 0 "https://shop.example/" "Mozilla/5.0"`,
			want:   `time=2025-10-10T13:55:36-05:00 remote="203.0.113.7" method="POST" path="/api/v1/items" query="page=2&sort=asc" proto="HTTP/2.0" status=201 body=0`,
		},
		{
			name:   "body bytes logged as -",
			format: "combined",
			line:   `203.0.113.7 - - [10/Oct/2025:13:55:36 +0000] "HEAD / HTTP/1.1" 304 - "-" "-"`,
			want:   `time=2025-10-10T13:55:36Z remote="203.0.113.7" method="HEAD" path="/" proto="HTTP/1.1" status=304`,
		},
		{
			name:   "IPv6 remote address",
			format: "combined",
			line:   `2001:db8:85a3::8a2e:370:7334 - - [01/Jan/2026:00:00:00 +0100] "GET / HTTP/1.1" 200 5 "-" "-"`,
			want:   `time=2026-01-01T00:00:00+01:00 remote="2001:db8:85a3::8a2e:370:7334" method="GET" path="/" proto="HTTP/1.1" status=200 body=5`,
		},
		{
			name:   `request logged as "-"`,
			format: "combined",
			line:   `198.51.100.4 - - [10/Oct/2025:13:55:36 +0200] "-" 400 0 "-" "-"`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="198.51.100.4" status=400 body=0`,
		},
		{
			name:   "empty request (client connected and closed)",
			format: "combined",
			line:   `198.51.100.4 - - [10/Oct/2025:13:55:36 +0200] "" 400 0 "-" "-"`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="198.51.100.4" status=400 body=0`,
		},
		{
			name:   "TLS ClientHello sent to the plain HTTP port",
			format: "combined",
			line:   `198.51.100.4 - - [10/Oct/2025:13:55:36 +0200] "\x16\x03\x01\x00\xCA\x01\x00\x00\xC6\x03\x03\xA1\xB2" 400 157 "-" "-"`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="198.51.100.4" status=400 body=157`,
		},
		{
			name:   "lower-case method is not an HTTP method",
			format: "combined",
			line:   `198.51.100.4 - - [10/Oct/2025:13:55:36 +0200] "get / HTTP/1.1" 400 0 "-" "-"`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="198.51.100.4" status=400 body=0`,
		},
		{
			name:   "WebDAV and SSDP methods are tokens",
			format: "combined",
			line:   `198.51.100.4 - - [10/Oct/2025:13:55:36 +0200] "M-SEARCH * HTTP/1.1" 405 0 "-" "-"`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="198.51.100.4" method="M-SEARCH" path="*" proto="HTTP/1.1" status=405 body=0`,
		},
		{
			name:   "HTTP/0.9 style request without protocol",
			format: "combined",
			line:   `198.51.100.4 - - [10/Oct/2025:13:55:36 +0200] "GET /robots.txt" 200 10 "-" "-"`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="198.51.100.4" method="GET" path="/robots.txt" status=200 body=10`,
		},
		{
			name:   `\x22 inside a quoted field; escaped path decoded`,
			format: "combined",
			line:   `198.51.100.4 - - [10/Oct/2025:13:55:36 +0200] "GET /search?q=\x22nginx\x22 HTTP/1.1" 200 1 "-" "Mozilla/5.0 \x22quoted\x22 (compatible)"`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="198.51.100.4" method="GET" path="/search" query="q=\"nginx\"" proto="HTTP/1.1" status=200 body=1`,
		},
		{
			name:   "path with escapes decoded",
			format: "combined",
			line:   `198.51.100.4 - - [10/Oct/2025:13:55:36 +0200] "GET /caf\xC3\xA9/\x5C HTTP/1.1" 404 1 "-" "-"`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="198.51.100.4" method="GET" path="/café/\\" proto="HTTP/1.1" status=404 body=1`,
		},
		{
			name:   "main_timed, multi-value upstream: retries and a pass to another group",
			format: mt,
			line:   `10.1.2.3 - - [10/Oct/2025:13:55:36 +0200] "GET /api HTTP/1.1" 200 12 "-" "Go-http-client/1.1" "-" api.example.com 0.070 0.010, 0.020 : 0.030 0.001, 0.002 : 0.003 0.005, - : 0.010 502, 504 : 200 10.0.0.1:8080, 10.0.0.2:8080 : 10.0.1.1:80 6b1f0e5d4c3b2a19f8e7d6c5b4a39281`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="10.1.2.3" vhost="api.example.com" method="GET" path="/api" proto="HTTP/1.1" status=200 body=12 rt=0.07 urt=0.06 uct=0.006 uht=0.015 ustatus=200 uaddr="10.0.1.1:80" tries=3 reqid="6b1f0e5d4c3b2a19f8e7d6c5b4a39281"`,
		},
		{
			name:   "main_timed, no upstream (static file)",
			format: mt,
			line:   `10.1.2.3 - - [10/Oct/2025:13:55:36 +0200] "GET /favicon.ico HTTP/1.1" 200 318 "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64)" "-" www.example.com 0.000 - - - - - 0c1d2e3f405162738495a6b7c8d9e0f1`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="10.1.2.3" vhost="www.example.com" method="GET" path="/favicon.ico" proto="HTTP/1.1" status=200 body=318 rt=0 reqid="0c1d2e3f405162738495a6b7c8d9e0f1"`,
		},
		{
			name:   "main_timed, a try that got no response",
			format: mt,
			line:   `10.1.2.3 - - [10/Oct/2025:13:55:36 +0200] "GET /slow HTTP/1.1" 504 160 "-" "k6/0.50" "203.0.113.9, 10.0.0.1" api.example.com 60.001 0.001, - 0.001, - 0.001, - 502, 504 10.0.0.1:8080, 10.0.0.2:8080 -`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="10.1.2.3" vhost="api.example.com" method="GET" path="/slow" proto="HTTP/1.1" status=504 body=160 rt=60.001 urt=0.001 uct=0.001 uht=0.001 ustatus=504 uaddr="10.0.0.2:8080" tries=2`,
		},
		{
			name:   "main_timed, unix socket upstream",
			format: mt,
			line:   `10.1.2.3 - - [10/Oct/2025:13:55:36 +0200] "GET /app HTTP/1.1" 200 1 "-" "-" "-" app.example.com 0.004 0.004 0.000 0.004 200 unix:/run/php/php-fpm.sock abc`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="10.1.2.3" vhost="app.example.com" method="GET" path="/app" proto="HTTP/1.1" status=200 body=1 rt=0.004 urt=0.004 uct=0 uht=0.004 ustatus=200 uaddr="unix:/run/php/php-fpm.sock" tries=1 reqid="abc"`,
		},
		{
			name:   "escape=json text format: \\\" inside quotes",
			format: `$remote_addr "$request" $status "$http_user_agent"`,
			escape: EscapeJSON,
			line:   `10.0.0.1 "GET /a\"b\\c HTTP/1.1" 200 "say \"hi\""`,
			want:   `remote="10.0.0.1" method="GET" path="/a\"b\\c" proto="HTTP/1.1" status=200`,
		},
		{
			name:   "escape=none: raw quote inside the last quoted field",
			format: "combined",
			escape: EscapeNone,
			line:   `10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET /x HTTP/1.1" 200 3 "-" "Evil "agent" v1"`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="10.0.0.1" method="GET" path="/x" proto="HTTP/1.1" status=200 body=3`,
		},
		{
			name:   "escape=none: raw quote inside a middle quoted field",
			format: "main",
			escape: EscapeNone,
			line:   `10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET /x HTTP/1.1" 200 3 "-" "Evil "agent" v1" "-"`,
			want:   `time=2025-10-10T13:55:36+02:00 remote="10.0.0.1" method="GET" path="/x" proto="HTTP/1.1" status=200 body=3`,
		},
		{
			name:   "unquoted user agent last on the line",
			format: `$remote_addr $status $http_user_agent`,
			line:   `10.0.0.1 200 Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0`,
			want:   `remote="10.0.0.1" status=200`,
		},
		{
			name:   "unquoted $time_local followed by a space",
			format: `$time_local $remote_addr $status`,
			line:   `10/Oct/2025:13:55:36 +0530 10.0.0.1 200`,
			want:   `time=2025-10-10T13:55:36+05:30 remote="10.0.0.1" status=200`,
		},
		{
			name:   "$time_iso8601 and $msec",
			format: `$time_iso8601 $msec $status`,
			line:   `2025-10-10T13:55:36-03:00 1728561336.123 200`,
			want:   `time=2025-10-10T13:55:36-03:00 status=200`,
		},
		{
			name:   "$msec alone, UTC",
			format: `$msec $status`,
			line:   `1728561336.123 200`,
			want:   `time=2024-10-10T11:55:36.123Z status=200`,
		},
		{
			name:   "${var} brace syntax and variables back to back",
			format: `${status}${body_bytes_sent}|${request_time}s`,
			line:   `200512|0.5s`,
			want:   `status=200 body=512 rt=0.5`,
		},
		{
			name:   "vhost: $host preferred over $http_host",
			format: `$http_host $host $status`,
			line:   `Example.COM:8443 example.com 200`,
			want:   `vhost="example.com" status=200`,
		},
		{
			name:   "vhost: $http_host port stripped and lower-cased",
			format: `$http_host $status`,
			line:   `Shop.Example.com:8080 200`,
			want:   `vhost="shop.example.com" status=200`,
		},
		{
			name:   "vhost: IPv6 literal with port keeps its brackets",
			format: `$http_host $status`,
			line:   `[2001:db8::1]:8443 200`,
			want:   `vhost="[2001:db8::1]" status=200`,
		},
		{
			name:   "vhost: $server_name when $host is not logged, $http_host - ignored",
			format: `$http_host $server_name $status`,
			line:   `- api.internal 200`,
			want:   `vhost="api.internal" status=200`,
		},
		{
			name:   "trace id from $otel_trace_id",
			format: `$status $otel_trace_id`,
			line:   `200 4bf92f3577b34da6a3ce929d0e0e4736`,
			want:   `status=200 trace="4bf92f3577b34da6a3ce929d0e0e4736"`,
		},
		{
			name:   "trace id from a logged traceparent",
			format: `$status "$http_traceparent"`,
			line:   `200 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`,
			want:   `status=200 trace="4bf92f3577b34da6a3ce929d0e0e4736"`,
		},
		{
			name:   "an all-zero or malformed traceparent is no trace",
			format: `$status "$http_traceparent"`,
			line:   `200 "00-00000000000000000000000000000000-00f067aa0ba902b7-01"`,
			want:   `status=200`,
		},
		{
			name:   "$request_method and $request_uri instead of $request",
			format: `$request_method $request_uri $server_protocol $status`,
			line:   `DELETE /v1/x?force=1 HTTP/1.1 204`,
			want:   `method="DELETE" path="/v1/x" query="force=1" proto="HTTP/1.1" status=204`,
		},
		{
			name:   "$uri and $args",
			format: `$uri?$args $status`,
			line:   `/v1/x?a=1 200`,
			want:   `path="/v1/x" query="a=1" status=200`,
		},
		{
			name:   "$bytes_sent, trailing CRLF ignored",
			format: `$status $bytes_sent $body_bytes_sent`,
			line:   "200 1024 800\r\n",
			want:   `status=200 body=800 bytes=1024`,
		},
		{
			name:   "status 000 of a request never answered",
			format: `$status $request_time`,
			line:   `000 0.000`,
			want:   `rt=0`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := mustCompile(t, "test", tc.format, tc.escape)
			var r Record
			err := f.Parse([]byte(tc.line), &r)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := summary(&r); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if !bytes.Equal(r.Line, trimEOL([]byte(tc.line))) {
				t.Errorf("Line = %q", r.Line)
			}
			if !f.JSON() {
				if back := renderLine(f, &r); !bytes.Equal(back, r.Line) {
					t.Errorf("raw values do not rebuild the line:\n%s\n%s", back, r.Line)
				}
			}
		})
	}
}

func TestParseRawVars(t *testing.T) {
	f := mustCompile(t, "main", "main", EscapeDefault)
	line := `10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 3 "https://ref.example/?a=\x22b\x22" "UA with spaces" "203.0.113.1, 10.0.0.2"`
	var r Record
	if err := f.Parse([]byte(line), &r); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, want string }{
		{"http_referer", `https://ref.example/?a=\x22b\x22`},
		{"http_user_agent", `UA with spaces`},
		{"http_x_forwarded_for", `203.0.113.1, 10.0.0.2`},
		{"remote_user", `-`},
		{"$status", `200`},
		{"HTTP_USER_AGENT", `UA with spaces`},
	} {
		if got := string(r.Var(f.Index(tc.name))); got != tc.want {
			t.Errorf("Var(%s) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if f.Index("upstream_addr") != -1 || r.Var(-1) != nil || r.Var(99) != nil {
		t.Error("a variable the format does not log must have no slot and no value")
	}
	if got := string(Unescape(nil, r.Var(f.Index("http_referer")), EscapeDefault)); got != `https://ref.example/?a="b"` {
		t.Errorf("Unescape(referer) = %q", got)
	}
}

// TestFailedLineHasNoStaleValues: a line that fails part way holds the
// values read before the failure and no value of the line parsed before
// it into the same Record (the parse clears the slots only on failure).
func TestFailedLineHasNoStaleValues(t *testing.T) {
	f := mustCompile(t, "main", "main", EscapeDefault)
	var r Record
	good := `10.0.0.1 - alice [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 3 "-" "UA" "203.0.113.1"`
	if err := f.Parse([]byte(good), &r); err != nil {
		t.Fatal(err)
	}
	bad := `10.0.0.2 - bob [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 3 "-" "UA`
	err := f.Parse([]byte(bad), &r)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Reason != ReasonUnterminatedQuote || pe.Var != "http_user_agent" || pe.Offset != 72 {
		t.Fatalf("err = %v, want an unterminated quote in $http_user_agent at byte 72", err)
	}
	var problems []string
	for name, want := range map[string]string{"remote_addr": "10.0.0.2", "remote_user": "bob", "http_referer": "-"} {
		if got := r.Var(f.Index(name)); string(got) != want {
			problems = append(problems, fmt.Sprintf("Var(%s) = %q, want %q (read before the failure)", name, got, want))
		}
	}
	for _, name := range []string{"http_user_agent", "http_x_forwarded_for"} {
		if got := r.Var(f.Index(name)); got != nil {
			problems = append(problems, fmt.Sprintf("Var(%s) = %q, want nil (not reached)", name, got))
		}
	}
	if len(problems) > 0 {
		t.Error(strings.Join(problems, "\n"))
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		format string
		line   string
		want   string // errSummary
	}{
		{
			name:   "empty line",
			format: "combined",
			line:   "",
			want:   `empty_line var= offset=0: byte 0: empty line`,
		},
		{
			name:   "status not a number",
			format: "combined",
			line:   `10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" abc 3 "-" "-"`,
			want:   `bad_status var=status offset=59: byte 59: $status: want a 3-digit status, got "abc"`,
		},
		{
			name:   "bytes not a number",
			format: "combined",
			line:   `10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 12k "-" "-"`,
			want:   `bad_number var=body_bytes_sent offset=63: byte 63: $body_bytes_sent: want a number, got "12k"`,
		},
		{
			name:   "bad month",
			format: "combined",
			line:   `10.0.0.1 - - [10/Foo/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-"`,
			want:   `bad_time var=time_local offset=14: byte 14: $time_local: want a time, got "10/Foo/2025:13:55:36 +0200"`,
		},
		{
			name:   "31st of February",
			format: "combined",
			line:   `10.0.0.1 - - [31/Feb/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-"`,
			want:   `bad_time var=time_local offset=14: byte 14: $time_local: want a time, got "31/Feb/2025:13:55:36 +0200"`,
		},
		{
			name:   "another format's line",
			format: "combined",
			line:   `{"status":200}`,
			want:   `literal_mismatch var=remote_addr offset=0: byte 0: $remote_addr: want value followed by literal " - ", got "{\"status\":200}"`,
		},
		{
			name:   "line cut inside the user agent",
			format: "combined",
			line:   `10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "Mozilla/5.0 (Wind`,
			want:   `unterminated_quote var=http_user_agent offset=70: byte 70: $http_user_agent: want closing quote before end of line, got "Mozilla/5.0 (Wind"`,
		},
		{
			name:   "trailing data after the last literal",
			format: "combined",
			line:   `10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" extra`,
			want:   `trailing_data var= offset=72: byte 72: want end of line, got " extra"`,
		},
		{
			name:   "upstream time garbage",
			format: "main_timed",
			line:   `10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.001 0.0x1 - - - - -`,
			want:   `bad_number var=upstream_response_time offset=85: byte 85: $upstream_response_time: want seconds, or values joined by ", " and " : ", got "0.0x1"`,
		},
		{
			name:   "upstream status garbage",
			format: "main_timed",
			line:   `10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.001 - - - 502, 2x0 - -`,
			want:   `bad_status var=upstream_status offset=91: byte 91: $upstream_status: want 3-digit statuses joined by ", " and " : ", got "502, 2x0"`,
		},
		{
			name:   "request time negative",
			format: "main_timed",
			line:   `10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h -0.5 - - - - - -`,
			want:   `bad_number var=request_time offset=79: byte 79: $request_time: want seconds, got "-0.5"`,
		},
		{
			name:   "bad JSON",
			format: "json",
			line:   `{"status":"200","request":"GET / HTTP/1.1"`,
			want:   `bad_json var= offset=42: byte 42: want ',' or '}', got ""`,
		},
		{
			name:   "JSON format given a text line",
			format: "json",
			line:   `10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-"`,
			want:   `bad_json var= offset=0: byte 0: want a JSON object, got "10.0.0.1 - - [10/Oct/2025:13:55:36 +0200"`,
		},
		{
			name:   "JSON status not a number",
			format: "json",
			line:   `{"status":"OK"}`,
			want:   `bad_status var=status offset=11: byte 11: $status: want a 3-digit status, got "OK"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := mustCompile(t, "test", tc.format, EscapeDefault)
			var r Record
			err := f.Parse([]byte(tc.line), &r)
			if got := errSummary(err); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if string(r.Line) != tc.line {
				t.Errorf("Line must survive a failure, got %q", r.Line)
			}
		})
	}
}

func TestUpstreamValues(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		sum   float64
		tries int
		ok    bool
	}{
		{"single", "0.123", 0.123, 1, true},
		{"dash alone", "-", -1, 1, true},
		{"retries in one group", "0.010, 0.020", 0.03, 2, true},
		{"retries and a second group", "0.010, 0.020 : 0.030", 0.06, 3, true},
		{"a try without response", "0.001, -", 0.001, 2, true},
		{"all dashes", "-, - : -", -1, 3, true},
		{"more decimals than nginx writes", "0.0000001", 1e-7, 1, true},
		{"integer seconds", "3", 3, 1, true},
		{"garbage", "0.1a", 0, 1, false},
		{"negative", "-0.1", 0, 1, false},
		{"empty", "", -1, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sum, n, ok := upstreamSum([]byte(tc.in))
			if ok != tc.ok || (ok && (sum != tc.sum || n != tc.tries)) {
				t.Errorf("upstreamSum(%q) = %v, %d, %v; want %v, %d, %v", tc.in, sum, n, ok, tc.sum, tc.tries, tc.ok)
			}
		})
	}
	last, n := upstreamLast([]byte("10.0.0.1:80, 10.0.0.2:80 : unix:/tmp/x.sock"))
	if string(last) != "unix:/tmp/x.sock" || n != 3 {
		t.Errorf("upstreamLast = %q, %d", last, n)
	}
	if sum, _, _ := upstreamSum([]byte("0.1, 0.2")); sum != 0.3 {
		t.Errorf("0.1+0.2 must be exactly 0.3 (integer nanoseconds), got %v", sum)
	}
}

func TestTimes(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // RFC3339Nano, "" for a parse failure
	}{
		{"time_local east", "10/Oct/2025:13:55:36 +0200", "2025-10-10T13:55:36+02:00"},
		{"time_local west", "01/Mar/2024:00:00:00 -0930", "2024-03-01T00:00:00-09:30"},
		{"time_local Nepal", "29/Feb/2024:23:59:59 +0545", "2024-02-29T23:59:59+05:45"},
		{"time_local UTC", "31/Dec/1999:23:59:59 +0000", "1999-12-31T23:59:59Z"},
		{"time_local leap second (nginx never logs one)", "31/Dec/2016:23:59:60 +0000", ""},
		{"time_local off-grid offset", "10/Oct/2025:13:55:36 +0001", "2025-10-10T13:55:36+00:01"},
		{"time_local not a leap year", "29/Feb/2025:00:00:00 +0000", ""},
		{"time_local short", "10/Oct/2025:13:55:36 +020", ""},
		{"time_local bad hour", "10/Oct/2025:24:00:00 +0000", ""},
		{"iso8601", "2025-10-10T13:55:36+02:00", "2025-10-10T13:55:36+02:00"},
		{"iso8601 negative offset", "2025-01-01T00:30:00-03:30", "2025-01-01T00:30:00-03:30"},
		{"iso8601 Z with millis (Filebeat)", "2025-10-10T11:55:36.123Z", "2025-10-10T11:55:36.123Z"},
		{"iso8601 micros and offset", "2025-10-10T11:55:36.123456+01:00", "2025-10-10T11:55:36.123456+01:00"},
		{"iso8601 no zone", "2025-10-10T11:55:36", ""},
		{"iso8601 empty fraction", "2025-10-10T11:55:36.Z", ""},
		{"msec", "1728561336.123", "2024-10-10T11:55:36.123Z"},
		{"msec without fraction", "1728561336", "2024-10-10T11:55:36Z"},
		{"msec garbage", "17285x1336.123", ""},
		// The window, 1970 to 2199 (issue 13, defect 7).
		{"time_local 9999", "10/Oct/9999:13:55:36 +0000", ""},
		{"time_local 2262", "12/Apr/2262:00:00:00 +0000", ""},
		{"time_local last second", "31/Dec/2199:23:59:59 +0000", "2199-12-31T23:59:59Z"},
		{"time_local first second past", "01/Jan/2200:00:00:00 +0000", ""},
		{"time_local past by zone", "31/Dec/2199:23:30:00 -0100", ""},
		{"time_local 1970", "01/Jan/1970:00:00:00 +0000", "1970-01-01T00:00:00Z"},
		{"time_local before 1970 by zone", "01/Jan/1970:00:30:00 +0100", ""},
		{"time_local year 0", "01/Jan/0000:00:00:00 +0000", ""},
		{"iso8601 9999", "9999-12-31T23:59:59+00:00", ""},
		{"iso8601 1969", "1969-12-31T23:59:59Z", ""},
		{"iso8601 last nanosecond", "2199-12-31T23:59:59.999999999Z", "2199-12-31T23:59:59.999999999Z"},
		{"msec 9999", "253402300799.000", ""},
		{"msec 2200", "7258118400.000", ""},
		{"msec last", "7258118399.999", "2199-12-31T23:59:59.999Z"},
		{"msec 0", "0.000", "1970-01-01T00:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseAnyTime([]byte(tc.in))
			s := ""
			if ok {
				s = got.Format(time.RFC3339Nano)
			}
			if s != tc.want {
				t.Errorf("parse(%q) = %q, want %q", tc.in, s, tc.want)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	tests := []struct {
		name string
		in   string
		e    Escape
		want string
	}{
		{"default quote", `a\x22b`, EscapeDefault, `a"b`},
		{"default backslash and UTF-8", `\x5C\xC3\xA9`, EscapeDefault, `\é`},
		{"default lower-case hex", `\x0a`, EscapeDefault, "\n"},
		{"default invalid sequence kept", `\xZZ\q\x2`, EscapeDefault, `\xZZ\q\x2`},
		{"json simple", `a\"b\\c\/d\n\t`, EscapeJSON, "a\"b\\c/d\n\t"},
		{"json unicode", `\u00e9\u001f`, EscapeJSON, "é\x1f"},
		{"json surrogate pair", `\ud83d\ude00`, EscapeJSON, "😀"},
		{"json lone surrogate", `\ud83dx`, EscapeJSON, "\uFFFDx"},
		{"json truncated", `abc\u12`, EscapeJSON, `abc\u12`},
		{"json trailing backslash", `abc\`, EscapeJSON, `abc\`},
		{"none", `a\x22b`, EscapeNone, `a\x22b`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(Unescape([]byte("prefix:"), []byte(tc.in), tc.e))
			if got != "prefix:"+tc.want {
				t.Errorf("Unescape(%q, %v) = %q, want %q", tc.in, tc.e, got, "prefix:"+tc.want)
			}
		})
	}
}

func TestEscapeNames(t *testing.T) {
	for _, e := range []Escape{EscapeDefault, EscapeJSON, EscapeNone} {
		got, err := ParseEscape(e.String())
		if err != nil || got != e {
			t.Errorf("ParseEscape(%q) = %v, %v", e.String(), got, err)
		}
	}
	if e, err := ParseEscape(""); err != nil || e != EscapeDefault {
		t.Errorf(`ParseEscape("") = %v, %v`, e, err)
	}
	if _, err := ParseEscape("html"); err == nil {
		t.Error("ParseEscape(html) must fail")
	}
}

func TestCompile(t *testing.T) {
	t.Run("presets", func(t *testing.T) {
		if got := strings.Join(Presets(), ","); got != "combined,json,main,main_timed" {
			t.Errorf("Presets() = %s", got)
		}
		for _, name := range Presets() {
			s, e, ok := Preset(name)
			if !ok {
				t.Fatalf("Preset(%s) missing", name)
			}
			f := mustCompile(t, name, s, e)
			g := mustCompile(t, name, name, EscapeDefault)
			if f.String() != g.String() || f.Escape() != g.Escape() || f.JSON() != g.JSON() {
				t.Errorf("Compile by preset name %s differs from the preset's string", name)
			}
		}
		if _, _, ok := Preset("nope"); ok {
			t.Error("unknown preset found")
		}
		f := mustCompile(t, "j", "json", EscapeDefault)
		if !f.JSON() || f.Escape() != EscapeJSON {
			t.Errorf("json preset: JSON=%v escape=%v", f.JSON(), f.Escape())
		}
	})
	t.Run("variables by slot", func(t *testing.T) {
		f := mustCompile(t, "x", `$remote_addr ${Status} $remote_addr "$http_x_custom"`, EscapeDefault)
		if got := strings.Join(f.Vars(), ","); got != "remote_addr,status,http_x_custom" {
			t.Errorf("Vars() = %s", got)
		}
		if f.Index("status") != 1 || f.Index("$http_x_custom") != 2 || f.Name() != "x" {
			t.Error("Index/Name")
		}
	})
	for _, tc := range []struct{ name, format, want string }{
		{"no variables", `just text`, `accesslog: format "bad": no variables`},
		{"empty", ``, `accesslog: format "bad": no variables`},
		{"dollar without name", `$ $status`, `accesslog: format "bad": byte 1: invalid variable name after '$'`},
		{"unclosed brace", `${status`, `accesslog: format "bad": byte 8: missing '}' after ${status`},
		{"bad JSON template", `{"status":"$status"`, `accesslog: format "bad": byte 19: JSON template: want ',' or '}'`},
		{"duplicate JSON key", `{"a":"$status","a":"$request"}`, `accesslog: format "bad": key "a": duplicate key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile("bad", tc.format, EscapeDefault)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestReasons(t *testing.T) {
	var names []string
	for _, r := range Reasons() {
		names = append(names, r.String())
	}
	want := "empty_line,literal_mismatch,unterminated_quote,trailing_data,bad_status,bad_number,bad_time,bad_json,missing_field"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("Reasons() = %s", got)
	}
	if Reason(0).String() != "unknown" || Reason(200).String() != "unknown" {
		t.Error("out-of-range reasons")
	}
}

func TestFloatsAreExact(t *testing.T) {
	// The metrics sum these; the test guards against a float parser that
	// drifts from strconv.
	for _, s := range []string{"0.001", "0.123", "1.5", "60.000", "12345.678"} {
		got, ok := parseSeconds([]byte(s))
		if !ok || math.Abs(got-mustFloat(s)) != 0 {
			t.Errorf("parseSeconds(%s) = %v", s, got)
		}
	}
}

// TestTimeLocalCache parses a sequence of $time_local values with one
// Record, so that the date cache is hit, missed and refilled, and compares
// each with the uncached parser.
func TestTimeLocalCache(t *testing.T) {
	var r Record
	for _, s := range []string{
		"10/Oct/2025:13:55:36 +0200",
		"10/Oct/2025:13:55:37 +0200",
		"10/Oct/2025:23:59:59 +0200",
		"11/Oct/2025:00:00:00 +0200",
		"11/Oct/2025:00:00:00 -0700",
		"11/Oct/2025:00:00:01 -0700",
		"11/Oct/2025:24:00:01 -0700",
		"11/Oct/2025:00:60:01 -0700",
		"11/Oct/2025 00:00:01 -0700",
		"11/Oct/2025:00:00:02 -0700",
		"29/Feb/2024:12:00:00 +0000",
		"29/Feb/2025:12:00:00 +0000",
		"29/Feb/2024:12:00:01 +0000",
	} {
		got, ok := r.parseTime([]byte(s))
		want, wantOK := parseTimeLocal([]byte(s))
		_, o1 := got.Zone()
		_, o2 := want.Zone()
		if ok != wantOK || !got.Equal(want) || o1 != o2 {
			t.Errorf("%s: cached %v %v, uncached %v %v", s, got, ok, want, wantOK)
		}
	}
}
