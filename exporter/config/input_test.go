package config

import (
	"strings"
	"testing"
)

// Every log format is compiled when the file is checked, exactly as run
// compiles it (issue 13, defect 4): check-config used to accept formats that
// run then refused.
func TestInputFormatsCompiled(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"lone dollar", "input:\n  format: \"$\"\n", `config.yml:2: input.format: accesslog: format "default": byte 1: invalid variable name after '$'`},
		{"no variable", "input:\n  format: \"just text\"\n", `config.yml:2: input.format: accesslog: format "default": no variables`},
		{"unclosed brace", "input:\n  format: \"${status\"\n", `config.yml:2: input.format: accesslog: format "default": byte 8: missing '}' after ${status`},
		{"bad json template", "input:\n  format: '{\"status\": $status'\n", `config.yml:2: input.format: accesslog: format "default": byte 18: JSON template: want ',' or '}'`},
		{"named lone dollar", "input:\n  formats:\n    - name: a\n      format: \"$\"\n", `config.yml:4: input.formats[0].format: accesslog: format "a": byte 1: invalid variable name after '$'`},
		{"named no variable", "input:\n  formats:\n    - name: a\n      format: \"- -\"\n", `config.yml:4: input.formats[0].format: accesslog: format "a": no variables`},
		{"both reported", "input:\n  format: \"$\"\n  formats:\n    - name: a\n      format: \"x\"\n",
			"config.yml:2: input.format: accesslog: format \"default\": byte 1: invalid variable name after '$'\n" +
				`config.yml:5: input.formats[0].format: accesslog: format "a": no variables`},
		{"preset", "input:\n  format: combined\n", ""},
		{"json template", "input:\n  format: '{\"s\":\"$status\"}'\n  escape: json\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("config.yml", []byte(tc.yaml))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Parse:\n got: %s\nwant: %s", got, tc.want)
			}
			if err != nil {
				return
			}
			d, err := c.CompileInput()
			if err != nil || d.Decoder.Default == nil {
				t.Errorf("CompileInput after a clean Parse: %v", err)
			}
		})
	}
}

// CompileInput reports what Validate reports, so run (which calls it after a
// flag changed the format) says the same as check-config.
func TestCompileInputAfterOverride(t *testing.T) {
	c, err := Parse("config.yml", []byte("input:\n  format: combined\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Input.Format = "$"
	_, err = c.CompileInput()
	want := `config.yml:2: input.format: accesslog: format "default": byte 1: invalid variable name after '$'`
	if err == nil || err.Error() != want {
		t.Errorf("CompileInput = %v, want %s", err, want)
	}
	if verr := c.Validate(); verr == nil || verr.Error() != want {
		t.Errorf("Validate = %v, want %s", verr, want)
	}
	c.Input.Format = "main"
	d, err := c.CompileInput()
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Decoder.Default.String(); !strings.HasPrefix(got, "$remote_addr") {
		t.Errorf("default format compiled to %q", got)
	}
}
