package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load reads and validates the file at path; see Parse. An empty path means
// no file: the defaults, validated.
func Load(path string) (*Config, error) {
	if path == "" {
		c := Default()
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return &c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // names the path already
	}
	return Parse(path, data)
}

// Parse reads a config from data, naming it filename in errors. The file is
// laid over Default(): a key present in the file replaces the default, lists
// included (they are not merged); a key left out keeps it. Unknown keys,
// wrong types and invalid values are all errors, and every error found is
// returned at once, one per line, each naming file, line and field (an
// empty filename reads as "<config>"). Each line is an *Error; with more
// than one they are joined with errors.Join.
func Parse(filename string, data []byte) (*Config, error) {
	if filename == "" {
		filename = "<config>"
	}
	c := Default()
	c.file = filename
	c.lines = map[string]int{}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, syntaxError(filename, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: filename, Line: extra.Line, Msg: "a second YAML document; the config is one document"}
	} else if err != io.EOF {
		return nil, syntaxError(filename, err)
	}

	d := decoder{file: filename, lines: c.lines}
	if len(doc.Content) == 1 { // else an empty file: the defaults
		d.decode(doc.Content[0], reflect.ValueOf(&c).Elem(), "")
	}
	errs := append(d.errs, c.validate(d.tainted)...)
	if err := joinErrors(errs); err != nil {
		return nil, err
	}
	return &c, nil
}

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are yaml.v3's parser (not scanner) errors. For these it
// reports the 0-based line where the unfinished construct began (and no line
// at all for the first line), so they need one added; scanner errors are
// already 1-based.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntaxError gives yaml.v3's "yaml: line 3: ..." our file:line shape.
func syntaxError(file string, err error) error {
	e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLineErr.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	if parserProblems[e.Msg] {
		e.Line++
	}
	return e
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

// decoder lays a yaml.Node tree over a Go value by hand rather than with
// yaml.v3's Decode so that it can go on past the first error, name fields by
// their dotted path, reject unknown keys with a suggestion, and remember the
// line of every key for later errors.
type decoder struct {
	file  string
	lines map[string]int
	errs  []*Error
	// failed are the paths that did not decode; checks on them, or on the
	// values around them, would only report the same mistake again.
	failed []string
}

// errorf reports a value that did not decode.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.keyErrorf(n, path, format, args...)
	d.failed = append(d.failed, path)
}

// keyErrorf reports a key that is not used (unknown, repeated): the values
// around it still decoded and are still worth checking.
func (d *decoder) keyErrorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// tainted says whether path, a value inside it or the value holding it
// failed to decode.
func (d *decoder) tainted(path string) bool {
	for _, f := range d.failed {
		if f == path || within(f, path) || within(path, f) {
			return true
		}
	}
	return false
}

// within says whether path names a value inside parent.
func within(path, parent string) bool {
	if parent == "" {
		return true
	}
	return strings.HasPrefix(path, parent) && len(path) > len(parent) &&
		(path[len(parent)] == '.' || path[len(parent)] == '[')
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		// "kafka:" with nothing under it keeps the defaults; "brokers:" with
		// nothing after it empties the list.
		if v.Kind() != reflect.Struct {
			v.SetZero()
		}
		return
	}
	switch v.Type() {
	case durationType:
		if n.Kind == yaml.ScalarNode {
			if dur, err := time.ParseDuration(n.Value); err == nil {
				v.SetInt(int64(dur))
				return
			}
		}
		d.errorf(n, path, `want a duration such as "5s" or "1m30s", got %s`, describe(n))
		return
	case byteSizeType:
		if n.Kind == yaml.ScalarNode {
			if b, err := ParseByteSize(n.Value); err == nil {
				v.SetInt(int64(b))
				return
			}
		}
		d.errorf(n, path, `want a size in bytes such as 1048576 or "1MiB" (units B, KB, MB, GB, KiB, MiB, GiB), got %s`, describe(n))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			d.lines[p] = item.Line
			d.decode(item, s.Index(i), p)
		}
		if s.Len() == 0 {
			s = reflect.Zero(v.Type()) // nil, as in Default(), so that configs compare equal
		}
		v.Set(s)
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Float64:
		d.decodeScalar(n, v, path)
	default:
		// Only reached when someone adds a field of a new kind to the schema.
		panic(fmt.Sprintf("config: field %s of type %s has no decoder", path, v.Type()))
	}
}

// decodeScalar decodes a string, a bool or a number; a value of another
// kind is reported with the kind wanted.
func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			d.errorf(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		var i int64
		// The tag check: yaml.v3 would truncate 1.5 to 1.
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.errorf(n, path, "want an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || n.Decode(&f) != nil {
			d.errorf(n, path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of fields, got %s", describe(n))
		return
	}
	names, index := fieldsOf(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		if k.ShortTag() == "!!merge" {
			d.keyErrorf(k, path, "merge keys (<<) are not supported; repeat the fields")
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.keyErrorf(k, path, "want a field name, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.keyErrorf(k, p, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := index[k.Value]
		if !ok {
			msg := "unknown field"
			if s := closest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.keyErrorf(k, p, "%s", msg)
			continue
		}
		d.lines[p] = k.Line
		d.decode(val, v.FieldByIndex(f), p)
	}
}

// fieldsOf lists the YAML names of t's exported fields, in order, and maps
// each to its field index path; the fields of a struct marked ",inline" are
// t's own, as yaml.v3 has them.
func fieldsOf(t reflect.Type) ([]string, map[string][]int) {
	var names []string
	index := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			inner, innerIndex := fieldsOf(f.Type)
			for _, n := range inner {
				names = append(names, n)
				index[n] = append([]int{i}, innerIndex[n]...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		names = append(names, name)
		index[name] = []int{i}
	}
	return names, index
}

// describe names what a node holds, for "want X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// String is the effective config as YAML, as check-config prints it:
// durations and sizes in their human form, short lists on one line. It
// reads back with Parse to an equal Config, except that credentials written
// into a URL (loki.url, push.url, tracing.endpoint) show as "***": the rest
// of the schema holds no secrets (passwords and tokens are only ever file
// names), so it is safe to print.
func (c *Config) String() string {
	var n yaml.Node
	if err := n.Encode(c.redacted()); err != nil {
		return "# " + err.Error()
	}
	flowScalarLists(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return "# " + err.Error()
	}
	if err := enc.Close(); err != nil {
		return "# " + err.Error()
	}
	return b.String()
}

// flowScalarLists writes lists of plain values as [a, b, c].
func flowScalarLists(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode {
		flow := true
		for _, c := range n.Content {
			flow = flow && c.Kind == yaml.ScalarNode
		}
		if flow {
			n.Style = yaml.FlowStyle
		}
	}
	for _, c := range n.Content {
		flowScalarLists(c)
	}
}
