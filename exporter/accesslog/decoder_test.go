package accesslog

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestParseJSON(t *testing.T) {
	tests := []struct {
		name   string
		format string // "" is the json preset
		line   string
		want   string
	}{
		{
			name: "json preset line, template order",
			line: `{"time":"2025-10-10T13:55:36+02:00","remote_addr":"10.0.0.1","remote_user":"","request":"GET /api/v1?x=1 HTTP/1.1","status":"200","body_bytes_sent":"512","bytes_sent":"800","request_time":"0.012","http_referer":"","http_user_agent":"curl/8","http_x_forwarded_for":"","host":"api.example.com","upstream_addr":"10.0.0.5:8080","upstream_status":"200","upstream_response_time":"0.010","upstream_connect_time":"0.001","upstream_header_time":"0.009","request_id":"r1","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`,
			want: `time=2025-10-10T13:55:36+02:00 remote="10.0.0.1" vhost="api.example.com" method="GET" path="/api/v1" query="x=1" proto="HTTP/1.1" status=200 body=512 bytes=800 rt=0.012 urt=0.01 uct=0.001 uht=0.009 ustatus=200 uaddr="10.0.0.5:8080" tries=1 reqid="r1" trace="4bf92f3577b34da6a3ce929d0e0e4736"`,
		},
		{
			name: "key order does not matter; numbers unquoted; escapes decoded",
			line: `{"status":404, "request_time":0.5, "request":"GET /a\"b\\\/c HTTP/1.1", "remote_addr":"::1", "time":"2025-10-10T13:55:36-07:00", "body_bytes_sent":0}`,
			want: `time=2025-10-10T13:55:36-07:00 remote="::1" method="GET" path="/a\"b\\/c" proto="HTTP/1.1" status=404 body=0 rt=0.5`,
		},
		{
			name: "default mapping: keys from another template",
			line: `{"@timestamp":"2025-10-10T11:55:36.5Z","client_ip":"192.0.2.1","method":"PUT","uri":"/v2/objects/7?force=true","protocol":"HTTP/2.0","status":201,"bytes_sent":77,"vhost":"Files.Example.ORG","user_agent":"aws-sdk","trace_id":"0af7651916cd43dd8448eb211c80319c","upstream_response_time":"0.010, 0.020 : 0.030","upstream_status":"502, 201","upstream_addr":"10.0.0.1:80, 10.0.0.2:80"}`,
			want: `time=2025-10-10T11:55:36.5Z remote="192.0.2.1" vhost="files.example.org" method="PUT" path="/v2/objects/7" query="force=true" proto="HTTP/2.0" status=201 bytes=77 urt=0.06 ustatus=201 uaddr="10.0.0.2:80" tries=2 trace="0af7651916cd43dd8448eb211c80319c"`,
		},
		{
			name: "time_local and msec forms under a JSON key",
			line: `{"time_local":"10/Oct/2025:13:55:36 +0200","status":"200"}`,
			want: `time=2025-10-10T13:55:36+02:00 status=200`,
		},
		{
			name: "nulls, nested objects and arrays of unknown keys are skipped",
			line: `{"status":"500","extra":{"a":[1,2,{"b":"}"}]},"tags":["x","y"],"request_id":null,"ok":true}`,
			want: `status=500`,
		},
		{
			name:   "custom template: nested keys, unquoted number, mixed value",
			format: `{"ts":"$msec","http":{"status":$status,"req":"$request_method $request_uri"},"up":"$upstream_addr"}`,
			line:   `{"up":"10.0.0.9:80","http":{"req":"PATCH /x?y=1","status":204},"ts":"1728561336.250"}`,
			want:   `time=2024-10-10T11:55:36.25Z method="PATCH" path="/x" query="y=1" status=204 uaddr="10.0.0.9:80" tries=1`,
		},
		{
			name:   "custom template: literal dotted key",
			format: `{"http.status":"$status"}`,
			line:   `{"http.status":"418"}`,
			want:   `status=418`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			format := tc.format
			if format == "" {
				format = "json"
			}
			f := mustCompile(t, "json", format, EscapeJSON)
			var r Record
			if err := f.Parse([]byte(tc.line), &r); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := summary(&r); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

const (
	envLine    = `192.0.2.10 - - [10/Oct/2025:13:55:36 +0200] \"GET /shop/cart?id=3 HTTP/1.1\" 200 4512 \"https://shop.example/\" \"Mozilla/5.0 \\x22Q\\x22\" \"-\" shop.example 0.051 0.050 0.001 0.049 200 10.0.0.7:8080 a1b2c3`
	envWant    = `time=2025-10-10T13:55:36+02:00 remote="192.0.2.10" vhost="shop.example" method="GET" path="/shop/cart" query="id=3" proto="HTTP/1.1" status=200 body=4512 rt=0.051 urt=0.05 uct=0.001 uht=0.049 ustatus=200 uaddr="10.0.0.7:8080" tries=1 reqid="a1b2c3"`
	envFB8     = `{"@timestamp":"2025-10-10T11:55:36.789Z","@metadata":{"beat":"filebeat","type":"_doc","version":"8.15.0"},"log":{"offset":12345,"file":{"path":"/var/log/nginx/access.log","inode":"1234","device_id":"64768"}},"message":"` + envLine + `","input":{"type":"filestream"},"ecs":{"version":"8.0.0"},"host":{"name":"web-1","hostname":"web-1.dc1","architecture":"x86_64","os":{"family":"debian"}},"agent":{"type":"filebeat","version":"8.15.0","hostname":"web-1"},"fields":{"log_type":"nginx_main_timed"}}`
	envFB6     = `{"@timestamp":"2025-10-10T11:55:36.000Z","beat":{"hostname":"legacy-3","name":"legacy-3","version":"6.8.23"},"source":"/var/log/nginx/access.log","offset":987,"message":"` + envLine + `","prospector":{"type":"log"},"input":{"type":"log"}}`
	envFBWin   = `{"message":"` + envLine + `","log.file.path":"C:\\nginx\\logs\\access.log","host.name":"WIN-\u00e9","@timestamp":"2025-10-10T11:55:36Z"}`
	rawLineFmt = `192.0.2.10 - - [10/Oct/2025:13:55:36 +0200] "GET /shop/cart?id=3 HTTP/1.1" 200 4512 "https://shop.example/" "Mozilla/5.0 \x22Q\x22" "-" shop.example 0.051 0.050 0.001 0.049 200 10.0.0.7:8080 a1b2c3`
)

func TestDecoder(t *testing.T) {
	mainTimed := mustCompile(t, "main_timed", "main_timed", EscapeDefault)
	combined := mustCompile(t, "combined", "combined", EscapeDefault)
	jsonFmt := mustCompile(t, "json", "json", EscapeJSON)
	d, err := NewDecoder(DecoderConfig{
		Default: mainTimed,
		Formats: []*Format{jsonFmt},
		Rules: []Rule{
			{Field: "fields.log_type", Match: regexp.MustCompile(`^nginx_json$`), Format: jsonFmt},
			{Field: "log.file.path", Match: regexp.MustCompile(`/legacy/`), Format: combined},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		in     string
		format string
		want   string
		err    string
	}{
		{
			name:   "Filebeat 8.x envelope",
			in:     envFB8,
			format: "main_timed",
			want:   `enveloped host="web-1" file="/var/log/nginx/access.log" ts=2025-10-10T11:55:36.789Z ` + envWant,
		},
		{
			name:   "Filebeat 6.x envelope: beat.hostname and source",
			in:     envFB6,
			format: "main_timed",
			want:   `enveloped host="legacy-3" file="/var/log/nginx/access.log" ts=2025-10-10T11:55:36Z ` + envWant,
		},
		{
			name:   "literal dotted keys and escaped envelope strings",
			in:     envFBWin,
			format: "main_timed",
			want:   `enveloped host="WIN-é" file="C:\\nginx\\logs\\access.log" ts=2025-10-10T11:55:36Z ` + envWant,
		},
		{
			name:   "raw line",
			in:     rawLineFmt + "\n",
			format: "main_timed",
			want:   envWant,
		},
		{
			name:   "rule on fields.log_type picks the JSON format",
			in:     `{"message":"{\"status\":\"503\",\"request\":\"GET /j HTTP/1.1\",\"host\":\"j.example\"}","fields":{"log_type":"nginx_json"},"host":{"name":"web-2"}}`,
			format: "json",
			want:   `enveloped host="web-2" vhost="j.example" method="GET" path="/j" proto="HTTP/1.1" status=503`,
		},
		{
			name:   "rule on literal dotted fields.log_type",
			in:     `{"message":"{\"status\":\"200\"}","fields.log_type":"nginx_json"}`,
			format: "json",
			want:   `enveloped status=200`,
		},
		{
			name:   "rule on log.file.path picks combined",
			in:     `{"message":"10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] \"GET /old HTTP/1.0\" 200 1 \"-\" \"-\"","log":{"file":{"path":"/srv/legacy/access.log"}}}`,
			format: "combined",
			want:   `enveloped file="/srv/legacy/access.log" time=2025-10-10T13:55:36+02:00 remote="10.0.0.1" method="GET" path="/old" proto="HTTP/1.0" status=200 body=1`,
		},
		{
			name:   "no rule matches: default",
			in:     `{"message":"` + envLine + `","fields":{"log_type":"other"}}`,
			format: "main_timed",
			want:   `enveloped ` + envWant,
		},
		{
			name:   "JSON object without message is not an envelope",
			in:     `{"status":"200"}`,
			format: "main_timed",
			err:    `literal_mismatch var=remote_addr offset=0: byte 0: $remote_addr: want value followed by literal " - ", got "{\"status\":\"200\"}"`,
		},
		{
			name:   "a non-string message is a broken envelope",
			in:     `{"message":42}`,
			format: "main_timed",
			err:    `bad_json var= offset=11: byte 11: want "message" as a JSON string, got "42}"`,
		},
		{
			name:   "a null message is a broken envelope",
			in:     `{"host":{"name":"web-1"},"message":null}`,
			format: "main_timed",
			err:    `bad_json var= offset=35: byte 35: want "message" as a JSON string, got "null}"`,
		},
		{
			name:   "an object message is a broken envelope",
			in:     `{"message":{"text":"x"}}`,
			format: "main_timed",
			err:    `bad_json var= offset=11: byte 11: want "message" as a JSON string, got "{\"text\":\"x\"}}"`,
		},
		{
			name:   "a nested message is no envelope's",
			in:     `{"log":{"message":1}}`,
			format: "main_timed",
			err:    `literal_mismatch var=remote_addr offset=0: byte 0: $remote_addr: want value followed by literal " - ", got "{\"log\":{\"message\":1}}"`,
		},
		{
			name:   "unparsable message keeps the envelope fields",
			in:     `{"message":"garbage \"here\"","host":{"name":"web-9"},"log":{"file":{"path":"/x.log"}}}`,
			format: "main_timed",
			want:   `enveloped host="web-9" file="/x.log"`,
			err:    `literal_mismatch var=remote_addr offset=0: byte 0: $remote_addr: want value followed by literal " - ", got "garbage \"here\""`,
		},
		{
			name:   "empty message",
			in:     `{"message":"","host":"shipper-1"}`,
			format: "main_timed",
			want:   `enveloped host="shipper-1"`,
			err:    `empty_line var= offset=0: byte 0: empty line`,
		},
	}
	var r Record
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Decode([]byte(tc.in), &r)
			if got := errSummary(err); got != tc.err {
				t.Errorf("error:\ngot  %s\nwant %s", got, tc.err)
			}
			if err == nil || tc.want != "" {
				if got := summary(&r); got != tc.want {
					t.Errorf("got  %s\nwant %s", got, tc.want)
				}
			}
			if r.Format == nil || r.Format.Name() != tc.format {
				t.Errorf("format = %v, want %s", r.Format.Name(), tc.format)
			}
		})
	}
	if n := len(d.Formats()); n != 3 {
		t.Errorf("Formats() has %d, want 3", n)
	}
}

func TestDecoderLineIsUnescapedMessage(t *testing.T) {
	d, _ := NewDecoder(DecoderConfig{Default: mustCompile(t, "mt", "main_timed", EscapeDefault)})
	var r Record
	if err := d.Decode([]byte(envFB8), &r); err != nil {
		t.Fatal(err)
	}
	if string(r.Line) != rawLineFmt {
		t.Errorf("Line:\ngot  %s\nwant %s", r.Line, rawLineFmt)
	}
}

func TestDecoderRuleCache(t *testing.T) {
	a := mustCompile(t, "a", "combined", EscapeDefault)
	b := mustCompile(t, "b", "main", EscapeDefault)
	d, err := NewDecoder(DecoderConfig{
		Default:   a,
		Rules:     []Rule{{Field: "fields.n", Match: regexp.MustCompile(`^b`), Format: b}},
		CacheSize: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	var r Record
	for i := 0; i < 50; i++ {
		v := []string{"a1", "b1", "a2", "b2", "a3", "b3", "a4"}[i%7]
		if err := d.Decode([]byte(`{"message":"x","fields":{"n":"`+v+`"}}`), &r); err == nil {
			t.Fatal("x must not parse")
		}
		want := "a"
		if v[0] == 'b' {
			want = "b"
		}
		if r.Format.Name() != want {
			t.Fatalf("value %s: format %s, want %s", v, r.Format.Name(), want)
		}
		if n := len(d.cache[d.rules[0].want]); n > 4 {
			t.Fatalf("cache grew to %d entries, bound is 4", n)
		}
	}
}

func TestNewDecoderErrors(t *testing.T) {
	f := mustCompile(t, "c", "combined", EscapeDefault)
	re := regexp.MustCompile(`x`)
	for _, tc := range []struct {
		name string
		cfg  DecoderConfig
		want string
	}{
		{"no default", DecoderConfig{}, "accesslog: decoder: no default format"},
		{"rule without field", DecoderConfig{Default: f, Rules: []Rule{{Match: re, Format: f}}}, "accesslog: decoder: rule 1: no field"},
		{"rule without match", DecoderConfig{Default: f, Rules: []Rule{{Field: "a", Format: f}}}, "accesslog: decoder: rule 1: no match"},
		{"rule without format", DecoderConfig{Default: f, Rules: []Rule{{Field: "a", Match: re}}}, "accesslog: decoder: rule 1: no format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewDecoder(tc.cfg); err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

// TestSharedFormat runs Decoders on several goroutines over one set of
// Formats, as the pipeline does; run with -race.
func TestSharedFormat(t *testing.T) {
	mainTimed := mustCompile(t, "main_timed", "main_timed", EscapeDefault)
	want := func() string {
		var r Record
		d, _ := NewDecoder(DecoderConfig{Default: mainTimed})
		_ = d.Decode([]byte(envFB8), &r)
		return summary(&r)
	}()
	done := make(chan string)
	for g := 0; g < 4; g++ {
		go func() {
			d, _ := NewDecoder(DecoderConfig{Default: mainTimed})
			var r Record
			got := ""
			for i := 0; i < 200; i++ {
				if err := d.Decode([]byte(envFB8), &r); err != nil {
					got = err.Error()
					break
				}
				got = summary(&r)
			}
			done <- got
		}()
	}
	for g := 0; g < 4; g++ {
		if got := <-done; got != want {
			t.Errorf("goroutine got %s", got)
		}
	}
}

// EnvelopeLine gives the Line of a decoded envelope again from
// Record.MessageAt, escapes and a CRLF ending included, whatever came
// before the message; out of range or at no string it says so.
func TestEnvelopeLine(t *testing.T) {
	d, err := NewDecoder(DecoderConfig{Default: mustCompile(t, "main", "main", EscapeDefault)})
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, v := range []string{
		`{"message":"plain"}`,
		`{"@timestamp":"2025-10-10T11:55:36.123Z","message":"a \"quoted\" \\ \u00e9\ud83d\ude00 line\r\n","host":{"name":"h"}}`,
		`{"host":{"name":"h"},"message":"","x":1}` + "\n",
		`{"a":{"message":"inner"},"message":"outer\n"}`,
		`{"message":"first","message":"second"}`,
	} {
		var r Record
		_ = d.Decode([]byte(v), &r)
		line, ok := EnvelopeLine([]byte(v), r.MessageAt, nil)
		if !r.Enveloped || !ok || string(line) != string(r.Line) {
			errs = append(errs, fmt.Sprintf("%s: enveloped %v, EnvelopeLine at %d = %q, %v; Line %q", v, r.Enveloped, r.MessageAt, line, ok, r.Line))
		}
	}
	for _, at := range []int{-1, 12, 13, 100} {
		if line, ok := EnvelopeLine([]byte(`{"message":"x`), at, nil); ok {
			errs = append(errs, fmt.Sprintf("at %d of an unclosed string: %q, ok", at, line))
		}
	}
	if len(errs) > 0 {
		t.Error(strings.Join(errs, "\n"))
	}
}
