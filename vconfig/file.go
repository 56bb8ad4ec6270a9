package vconfig

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"gopkg.in/yaml.v2"

	"github.com/nextpkg/vrpc/internal/settings"
)

// LoadFile loads a configuration file (YAML, JSON or TOML, by its
// extension) into v, a pointer to a struct with json tags, after expanding
// ${ENV} references, and calls v's Validate method if it has one. It reads
// the keys as go-zero's conf did (the tags' default= values fill absent
// keys, durations are strings such as 30s, names match regardless of case),
// but strictly: a key the struct does not have is an error naming it and
// the nearest known key. The free-form maps (settings, services,
// server_keys) are left to their own decoders.
//
// It stands in for go-zero's conf, whose import starts a signal handler
// that ends the process on SIGTERM: a library must not do that.
func LoadFile(file string, v any) error { return loadFile(file, v) }

// loadFile is LoadFile that leaves the top-level keys skip, the sections of
// other programs, unchecked.
func loadFile(file string, v any, skip ...string) error {
	if err := decodeFile(file, v, skip...); err != nil {
		return err
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		return val.Validate()
	}
	return nil
}

// decodeFile is loadFile without Validate.
func decodeFile(file string, v any, skip ...string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	data = []byte(os.ExpandEnv(string(data)))
	var raw any
	switch ext := strings.ToLower(filepath.Ext(file)); ext {
	case ".json":
		err = json.Unmarshal(data, &raw)
	case ".yaml", ".yml":
		err = yaml.Unmarshal(data, &raw)
	case ".toml":
		err = toml.Unmarshal(data, &raw)
	default:
		return fmt.Errorf("unrecognized file type %q: want .yaml, .yml, .json or .toml", ext)
	}
	if err != nil {
		return err
	}
	raw = stringKeys(raw)
	if raw == nil {
		raw = map[string]any{}
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return fmt.Errorf("want a mapping of keys at the top, got %T", raw)
	}
	for _, k := range skip {
		delete(m, k)
	}
	t := reflect.TypeOf(v).Elem()
	if err := walk("", m, t); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// stringKeys turns YAML's map[any]any into map[string]any, throughout.
func stringKeys(v any) any {
	switch v := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = stringKeys(e)
		}
		return m
	case map[string]any:
		for k, e := range v {
			v[k] = stringKeys(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = stringKeys(e)
		}
		return v
	}
	return v
}

// field is one key of a configuration struct.
type field struct {
	key    string
	typ    reflect.Type
	def    string
	hasDef bool
}

// fields lists the keys of struct type t, those of embedded structs
// included. A field whose tag names no key goes by its name in lower case.
func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, hasTag := sf.Tag.Lookup("json")
		name, opts, _ := strings.Cut(tag, ",")
		if sf.Anonymous && !hasTag && sf.Type.Kind() == reflect.Struct {
			out = append(out, fields(sf.Type)...)
			continue
		}
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		f := field{key: name, typ: sf.Type}
		for o := range strings.SplitSeq(opts, ",") {
			if d, ok := strings.CutPrefix(o, "default="); ok {
				f.def, f.hasDef = d, true
			}
		}
		out = append(out, f)
	}
	return out
}

var durationType = reflect.TypeFor[time.Duration]()

// walk checks the keys of m, at path, against struct type t, and readies
// their values for encoding/json: defaults filled in, durations in
// nanoseconds, nested structs walked.
func walk(path string, m map[string]any, t reflect.Type) error {
	fs := fields(t)
	known := make([]string, len(fs))
	for i, f := range fs {
		known[i] = f.key
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if slices.Contains(known, k) {
			continue
		}
		if i := slices.IndexFunc(known, func(s string) bool { return strings.EqualFold(s, k) }); i >= 0 {
			if _, dup := m[known[i]]; !dup {
				m[known[i]] = m[k]
				delete(m, k)
				continue
			}
		}
		hint := ""
		if s := settings.Closest(k, known); s != "" {
			hint = " (did you mean " + s + "?)"
		}
		return fmt.Errorf("%s: unknown key%s", join(path, k), hint)
	}
	for _, f := range fs {
		v, ok := m[f.key]
		switch {
		case ok:
		case f.hasDef:
			v = f.def
		case f.typ.Kind() == reflect.Struct:
			v = map[string]any{} // for the defaults of its keys
		default:
			continue
		}
		v, err := value(join(path, f.key), v, f.typ)
		if err != nil {
			return err
		}
		m[f.key] = v
	}
	return nil
}

// value readies v, the value at path, for decoding into type t.
func value(path string, v any, t reflect.Type) (any, error) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	s, isString := v.(string)
	switch {
	case v == nil:
		return v, nil
	case t == durationType:
		if !isString {
			return v, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%s %q: want a duration such as 30s", path, s)
		}
		return int64(d), nil
	case t.Kind() == reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: want a mapping of keys, got %v", path, v)
		}
		return m, walk(path, m, t)
	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: want a mapping of names, got %v", path, v)
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			e, err := value(path+"."+k, m[k], t.Elem())
			if err != nil {
				return nil, err
			}
			m[k] = e
		}
		return m, nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		l, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s: want a list, got %v", path, v)
		}
		for i := range l {
			e, err := value(fmt.Sprintf("%s[%d]", path, i), l[i], t.Elem())
			if err != nil {
				return nil, err
			}
			l[i] = e
		}
		return l, nil
	case t.Kind() == reflect.String && !isString:
		switch v.(type) {
		case map[string]any, []any:
			return v, nil // encoding/json names the mismatch
		}
		return fmt.Sprint(v), nil // port: 8080 into a string, as go-zero did
	case isString:
		return scalar(path, s, t)
	}
	return v, nil
}

// scalar parses s, a tag's default or a quoted YAML value, for a number or
// bool field.
func scalar(path, s string, t reflect.Type) (any, error) {
	var (
		v   any
		err error
	)
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v, err = strconv.ParseInt(s, 10, 64)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v, err = strconv.ParseUint(s, 10, 64)
	case reflect.Float32, reflect.Float64:
		v, err = strconv.ParseFloat(s, 64)
	case reflect.Bool:
		v, err = strconv.ParseBool(s)
	default:
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s %q: want a %s", path, s, t.Kind())
	}
	return v, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
