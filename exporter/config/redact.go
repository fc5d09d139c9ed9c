package config

import "strings"

// RedactURL hides the user information of a URL ("http://user:secret@host/p"
// reads "http://***@host/p"), for everything that shows a configured URL:
// check-config, errors and logs. The whole user part goes, as a token is
// often given as the user name alone. It works on text that does not parse
// as a URL too, since the error saying so must not show the secret either.
func RedactURL(s string) string {
	start := strings.Index(s, "://")
	if start < 0 {
		start = 0
	} else {
		start += 3
	}
	end := len(s)
	if i := strings.IndexAny(s[start:], "/?#"); i >= 0 {
		end = start + i
	}
	at := strings.LastIndexByte(s[start:end], '@')
	if at < 0 {
		return s
	}
	return s[:start] + "***" + s[start+at:]
}

// redacted is c with the credentials in its URLs hidden, for printing.
func (c *Config) redacted() *Config {
	r := *c
	r.Loki.URL = RedactURL(r.Loki.URL)
	r.Push.URL = RedactURL(r.Push.URL)
	r.Tracing.Endpoint = RedactURL(r.Tracing.Endpoint)
	return &r
}
