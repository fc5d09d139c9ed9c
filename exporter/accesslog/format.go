package accesslog

// Format is a compiled nginx log_format (or JSON template).
// Stub signatures other packages build against; the parser fills them in.
type Format struct {
	name string
	vars []string // variable names by slot
}

// Name is the format's name (a preset name, a configured name, or "default").
func (f *Format) Name() string { return f.name }

// Index returns the slot of variable name (without '$') in this format, or -1
// when the format does not log it. Callers resolve slots once, not per line.
func (f *Format) Index(name string) int {
	for i, v := range f.vars {
		if v == name {
			return i
		}
	}
	return -1
}

// Var returns the raw value of the variable in slot i, or nil.
func (r *Record) Var(i int) []byte {
	if i < 0 || i >= len(r.vars) {
		return nil
	}
	return r.vars[i]
}
