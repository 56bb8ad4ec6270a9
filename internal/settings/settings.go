// Package settings decodes the free-form `settings` maps of the YAML
// configuration (rpc_bus.settings, targets.<name>.settings, plugin settings)
// into typed structs, strictly: an unknown key or a value of the wrong type
// is an error that names the key.
package settings

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// Decode fills into, a pointer to a struct whose fields carry json tags,
// from m. prefix is the YAML path of m for error messages, such as
// "rpc_bus.settings". Keys absent from m leave their fields as they are, so
// callers set defaults before decoding.
func Decode(prefix string, m map[string]any, into any) error {
	v := reflect.ValueOf(into).Elem()
	fields := fieldsByKey(v.Type())
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the first bad key deterministically
	for _, k := range keys {
		i, ok := fields[k]
		if !ok {
			return fmt.Errorf("%s: unknown key %q (known: %s)", prefix, k, strings.Join(Keys(into), ", "))
		}
		b, err := json.Marshal(m[k])
		if err != nil {
			return fmt.Errorf("%s.%s: %w", prefix, k, err)
		}
		f := v.FieldByIndex(i)
		if err := json.Unmarshal(b, f.Addr().Interface()); err != nil {
			return fmt.Errorf("%s.%s: want %s, got %s", prefix, k, describe(f.Type()), b)
		}
	}
	return nil
}

// Keys lists the keys a settings struct accepts, sorted.
func Keys(into any) []string {
	fields := fieldsByKey(reflect.TypeOf(into).Elem())
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fieldsByKey maps each key of t to its field's index, including the keys
// of embedded structs without a json tag of their own (such as TLS).
func fieldsByKey(t reflect.Type) map[string][]int {
	fields := make(map[string][]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, sub := range fieldsByKey(f.Type) {
				fields[k] = append([]int{i}, sub...)
			}
			continue
		}
		if name != "" && name != "-" {
			fields[name] = []int{i}
		}
	}
	return fields
}

func describe(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[Duration]():
		return `a duration such as "100ms"`
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		return "a number"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.Map || t.Kind() == reflect.Struct:
		return "a map"
	}
	return t.String()
}

// Duration is a time.Duration written in YAML as "100ms" or "30s".
type Duration time.Duration

// UnmarshalJSON accepts a duration string such as "1.5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
