package config

import (
	"strings"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
)

// Decoding is the input section compiled: what every Decoder is built from,
// and the default vhost of each format.
type Decoding struct {
	Decoder accesslog.DecoderConfig
	VHosts  map[*accesslog.Format]string
}

// CompileInput compiles every log format and rule of the input section, as
// run and replay use them. Validate (so Load and check-config) runs the same
// code, so that a file check-config accepts is one run accepts, and both
// name the same file:line: field.
func (c *Config) CompileInput() (*Decoding, error) {
	v := validator{c: c, tainted: func(string) bool { return false }}
	d := v.input(&c.Input)
	if err := joinErrors(v.errs); err != nil {
		return nil, err
	}
	return d, nil
}

// input checks the input section and compiles it; the result is complete
// only when no error was reported.
func (v *validator) input(in *Input) *Decoding {
	d := &Decoding{VHosts: map[*accesslog.Format]string{}}
	if in.Format == "" && !in.JSON {
		v.errorf("input.format", "required unless input.json is true")
	} else if def, ok := v.format("input", "default", in.Format, in.Escape, in.JSON); ok {
		d.Decoder.Default = def
		d.VHosts[def] = in.DefaultVHost
	}

	byName := map[string]*accesslog.Format{}
	names := map[string]int{}
	var list []string
	for i := range in.Formats {
		f := &in.Formats[i]
		p := idx("input.formats", i)
		if f.Escape == "" {
			f.Escape = "default"
		}
		switch first, dup := names[f.Name]; {
		case f.Name == "":
			v.errorf(p+".name", "required: rules choose a format by its name")
		case dup:
			v.errorf(p+".name", "duplicate format name %q (first at input.formats[%d])", f.Name, first)
		default:
			names[f.Name] = i
			list = append(list, f.Name)
		}
		if f.Format == "" && !f.JSON {
			v.errorf(p+".format", "required unless json is true")
			continue
		}
		cf, ok := v.format(p, f.Name, f.Format, f.Escape, f.JSON)
		if !ok {
			continue
		}
		if _, taken := byName[f.Name]; !taken {
			byName[f.Name] = cf
		}
		d.Decoder.Formats = append(d.Decoder.Formats, cf)
		d.VHosts[cf] = f.DefaultVHost
		if f.DefaultVHost == "" {
			d.VHosts[cf] = in.DefaultVHost
		}
	}

	for i, r := range in.Rules {
		p := idx("input.rules", i)
		if r.Field == "" {
			v.errorf(p+".field", "required: the envelope field to match, e.g. log.file.path")
		}
		re := v.regexp(p+".match", r.Match)
		if _, ok := names[r.Format]; !ok {
			switch {
			case r.Format == "":
				v.errorf(p+".format", "required: the name of an entry of input.formats")
			case len(list) == 0:
				v.errorf(p+".format", "unknown format %q: input.formats is empty", r.Format)
			default:
				v.errorf(p+".format", "unknown format %q (input.formats has %s)", r.Format, strings.Join(list, ", "))
			}
		}
		if f := byName[r.Format]; f != nil && re != nil && r.Field != "" {
			d.Decoder.Rules = append(d.Decoder.Rules, accesslog.Rule{Field: r.Field, Match: re, Format: f})
		}
	}
	if len(v.errs) == 0 {
		if _, err := accesslog.NewDecoder(d.Decoder); err != nil {
			v.errorf("input.rules", "%v", err)
		}
	}
	return d
}

// format compiles one log format of the input section at path (input, or
// input.formats[i]); a bad escape is reported on path.escape, a format that
// does not compile on path.format.
func (v *validator) format(path, name, format, escape string, json bool) (*accesslog.Format, bool) {
	esc := accesslog.EscapeDefault
	if escape != "" {
		var err error
		if esc, err = accesslog.ParseEscape(escape); err != nil {
			v.errorf(path+".escape", "want default, json or none, got %q", escape)
			return nil, false
		}
	}
	if format == "" && json {
		format = "json"
	}
	f, err := accesslog.Compile(name, format, esc)
	if err != nil {
		v.errorf(path+".format", "%v", err)
		return nil, false
	}
	return f, true
}
