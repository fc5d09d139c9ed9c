package deploy

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testenv"
)

// nginxDirectives splits an nginx config into directives (the words up to
// each ';' or '{'), as nginx's own ngx_conf_read_token does for what these
// files use: quoted strings with backslash escapes, # comments, blocks.
// Block openers and '}' are not returned.
func nginxDirectives(src string) ([][]string, error) {
	var (
		out  [][]string
		cur  []string
		word strings.Builder
		in   bool // inside a word
	)
	end := func() {
		if in {
			cur = append(cur, word.String())
			word.Reset()
			in = false
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '#' && !in:
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			end()
		case c == ';' || c == '{':
			end()
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
		case c == '}':
			end()
			if len(cur) > 0 {
				return nil, fmt.Errorf("directive %q not ended by ';' before '}'", cur)
			}
		case (c == '"' || c == '\'') && !in:
			q := c
			in = true
			for i++; ; i++ {
				if i >= len(src) {
					return nil, errors.New("unterminated quoted string")
				}
				if src[i] == '\\' && i+1 < len(src) {
					switch n := src[i+1]; n {
					case '"', '\'', '\\':
						word.WriteByte(n)
					case 't':
						word.WriteByte('\t')
					case 'r':
						word.WriteByte('\r')
					case 'n':
						word.WriteByte('\n')
					default:
						word.WriteByte('\\')
						word.WriteByte(n)
					}
					i++
					continue
				}
				if src[i] == q {
					break
				}
				word.WriteByte(src[i])
			}
			end()
		default:
			in = true
			word.WriteByte(c)
		}
	}
	end()
	if len(cur) > 0 {
		return nil, fmt.Errorf("directive %q not ended by ';'", cur)
	}
	return out, nil
}

type logFormat struct {
	escape string // default, json or none
	format string // the strings concatenated, as nginx does
}

// nginxLogFormats returns the log_format directives of an nginx config by
// name.
func nginxLogFormats(src string) (map[string]logFormat, error) {
	dirs, err := nginxDirectives(src)
	if err != nil {
		return nil, err
	}
	formats := map[string]logFormat{}
	for _, d := range dirs {
		if d[0] != "log_format" {
			continue
		}
		if len(d) < 3 {
			return nil, fmt.Errorf("log_format %q: no format string", d)
		}
		lf := logFormat{escape: "default"}
		args := d[2:]
		if e, ok := strings.CutPrefix(args[0], "escape="); ok {
			lf.escape, args = e, args[1:]
		}
		lf.format = strings.Join(args, "")
		formats[d[1]] = lf
	}
	return formats, nil
}

// The log_format strings in the shipped nginx.conf are the exporter's
// presets, byte for byte: a drifted space would make every line a parse
// error in production.
func TestNginxLogFormatsAreThePresets(t *testing.T) {
	data, err := os.ReadFile("nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	formats, err := nginxLogFormats(string(data))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]struct {
		format string
		escape string
	}{
		"main_timed": {accesslog.FormatMainTimed, "default"},
		"json":       {accesslog.FormatJSON, "json"},
	} {
		got, ok := formats[name]
		if !ok {
			t.Errorf("nginx.conf has no log_format %s; has %v", name, formats)
			continue
		}
		if got.format != want.format {
			t.Errorf("log_format %s differs from the exporter's preset:\n nginx.conf: %s\n exporter:   %s", name, got.format, want.format)
		}
		if got.escape != want.escape {
			t.Errorf("log_format %s: escape=%s, want %s", name, got.escape, want.escape)
		}
		preset, esc, ok := accesslog.Preset(name)
		if !ok || preset != want.format || esc.String() != want.escape {
			t.Errorf("accesslog.Preset(%q) = %q, %v, %v; the preset name in nginx.conf should be the exporter's", name, preset, esc, ok)
		}
	}
	// The access log Filebeat tails is written in main_timed.
	dirs, _ := nginxDirectives(string(data))
	var logs []string
	for _, d := range dirs {
		if d[0] == "access_log" {
			logs = append(logs, strings.Join(d[1:], " "))
		}
	}
	if len(logs) != 1 || !strings.HasPrefix(logs[0], "/var/log/nginx/access.log main_timed") {
		t.Errorf("access_log directives = %q, want one: /var/log/nginx/access.log main_timed ...", logs)
	}
}

func TestNginxDirectives(t *testing.T) {
	got, err := nginxDirectives(`a 'x' "y\"z" # c
	b { c 'd' 'e\'f'; }`)
	if err != nil {
		t.Fatal(err)
	}
	want := `[[a x y"z b] [c d e'f]]`
	if fmt.Sprint(got) != want {
		t.Errorf("got %q, want %s", got, want)
	}
}

// nginxSite is the shipped nginx config laid out under dir with its paths
// moved there, as a test or a throwaway instance runs it. Substitutions map
// further shipped strings (addresses, names) to the test's.
func nginxSite(t *testing.T, dir string, subst map[string]string) string {
	t.Helper()
	paths := map[string]string{
		"/run/nginx.pid":        filepath.Join(dir, "nginx.pid"),
		"/var/log/nginx/":       filepath.Join(dir, "logs") + "/",
		"/etc/nginx/conf.d/":    filepath.Join(dir, "conf.d") + "/",
		"/etc/nginx/mime.types": "/etc/nginx/mime.types", // Debian's, kept
	}
	for _, d := range []string{"logs", "conf.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []struct{ src, dst string }{
		{"nginx/nginx.conf", "nginx.conf"},
		{"nginx/conf.d/default.conf", "conf.d/default.conf"},
	} {
		data, err := os.ReadFile(f.src)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for from, to := range paths {
			s = strings.ReplaceAll(s, from, to)
		}
		for from, to := range subst {
			s = strings.ReplaceAll(s, from, to)
		}
		if err := os.WriteFile(filepath.Join(dir, f.dst), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "nginx.conf")
}

// nginx itself accepts the shipped config (with the site from conf.d/).
func TestNginxConfigTest(t *testing.T) {
	nginx := lookTool(t, "nginx")
	if _, err := os.Stat("/etc/nginx/mime.types"); err != nil {
		testenv.Missing(t, "deploy-tools", "no /etc/nginx/mime.types (nginx not installed from Debian)")
	}
	dir := t.TempDir()
	conf := nginxSite(t, dir, nil)
	out, err := exec.Command(nginx, "-t", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "logs", "error.log")).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "test is successful") {
		t.Errorf("nginx -t said:\n%s", out)
	}
}

// lookTool finds a tool the deploy tests run, also in /usr/sbin (not on
// every user's PATH), or skips (fails under ACCESSLOG_REQUIRE_EXTERNAL=1):
// `make deploy-tools` installs them.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	testenv.Missing(t, "deploy-tools", "%s is not installed (looked on PATH, /usr/sbin, /sbin)", name)
	return ""
}
