package pipeline

import (
	"fmt"
	"regexp"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// decoding is the compiled input section: what every worker's Decoder is
// built from, and the default vhost of each format.
type decoding struct {
	dc     accesslog.DecoderConfig
	vhosts map[*accesslog.Format]string
}

// compileInput compiles the input section. Errors name the config field and
// line, since a log_format typo is the most likely mistake in the file.
func compileInput(cfg *config.Config) (*decoding, error) {
	in := cfg.Input
	d := &decoding{vhosts: map[*accesslog.Format]string{}}
	def, err := compileFormat("default", in.Format, in.Escape, in.JSON)
	if err != nil {
		return nil, cfg.Errorf("input.format", "%v", err)
	}
	d.dc.Default = def
	d.vhosts[def] = in.DefaultVHost
	byName := map[string]*accesslog.Format{}
	for i, nf := range in.Formats {
		f, err := compileFormat(nf.Name, nf.Format, nf.Escape, nf.JSON)
		if err != nil {
			return nil, cfg.Errorf(fmt.Sprintf("input.formats[%d].format", i), "%v", err)
		}
		byName[nf.Name] = f
		d.dc.Formats = append(d.dc.Formats, f)
		d.vhosts[f] = nf.DefaultVHost
		if nf.DefaultVHost == "" {
			d.vhosts[f] = in.DefaultVHost
		}
	}
	for i, r := range in.Rules {
		re, err := regexp.Compile(r.Match)
		if err != nil {
			return nil, cfg.Errorf(fmt.Sprintf("input.rules[%d].match", i), "%v", err)
		}
		f, ok := byName[r.Format]
		if !ok {
			return nil, cfg.Errorf(fmt.Sprintf("input.rules[%d].format", i), "no format named %q in input.formats", r.Format)
		}
		d.dc.Rules = append(d.dc.Rules, accesslog.Rule{Field: r.Field, Match: re, Format: f})
	}
	if _, err := accesslog.NewDecoder(d.dc); err != nil {
		return nil, cfg.Errorf("input", "%v", err)
	}
	return d, nil
}

func compileFormat(name, format, escape string, json bool) (*accesslog.Format, error) {
	if format == "" && json {
		format = "json"
	}
	esc := accesslog.EscapeDefault
	if escape != "" {
		var err error
		if esc, err = accesslog.ParseEscape(escape); err != nil {
			return nil, err
		}
	}
	return accesslog.Compile(name, format, esc)
}
