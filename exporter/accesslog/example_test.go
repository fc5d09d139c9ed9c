package accesslog_test

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
)

func Example() {
	mainTimed, err := accesslog.Compile("main_timed", "main_timed", accesslog.EscapeDefault)
	if err != nil {
		panic(err)
	}
	jsonFmt, err := accesslog.Compile("json", "json", accesslog.EscapeJSON)
	if err != nil {
		panic(err)
	}
	d, err := accesslog.NewDecoder(accesslog.DecoderConfig{
		Default: mainTimed,
		Rules: []accesslog.Rule{
			{Field: "fields.log_type", Match: regexp.MustCompile(`^nginx_json$`), Format: jsonFmt},
		},
	})
	if err != nil {
		panic(err)
	}
	// Slots belong to a format: resolve them once per format, not per line.
	uaSlot := map[*accesslog.Format]int{}
	for _, f := range d.Formats() {
		uaSlot[f] = f.Index("http_user_agent")
	}

	var r accesslog.Record // reuse one Record per goroutine
	for _, value := range []string{
		`{"message":"{\"status\":\"503\",\"request\":\"GET /api HTTP/1.1\",\"request_time\":\"0.250\"}","fields":{"log_type":"nginx_json"},"host":{"name":"web-1"}}`,
		`192.0.2.1 - - [10/Oct/2025:13:55:36 +0200] "GET /a?b=1 HTTP/1.1" 200 12 "-" "curl/8" "-" example.com 0.030 0.010, 0.020 : - - - 502, 504 : 200 10.0.0.1:80, 10.0.0.2:80 : 10.0.1.1:80 id1`,
		`192.0.2.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 2xx 0 "-" "-" "-" example.com 0.001 - - - - - id2`,
	} {
		if err := d.Decode([]byte(value), &r); err != nil {
			var pe *accesslog.ParseError
			errors.As(err, &pe)
			fmt.Printf("%s: %v (line kept: %d bytes)\n", pe.Reason, err, len(r.Line))
			continue
		}
		fmt.Printf("%s %s %s %d %.3fs upstream=%.3fs tries=%d last=%s host=%q ua=%q\n",
			r.Format.Name(), r.Method, r.Path, r.Status, r.RequestTime, r.UpstreamResponseTime,
			r.UpstreamTries, r.UpstreamAddr, r.Host, r.Var(uaSlot[r.Format]))
	}
	// Output:
	// json GET /api 503 0.250s upstream=-1.000s tries=0 last= host="web-1" ua=""
	// main_timed GET /a 200 0.030s upstream=0.030s tries=3 last=10.0.1.1:80 host="" ua="curl/8"
	// bad_status: byte 60: $status: want a 3-digit status, got "2xx" (line kept: 109 bytes)
}
