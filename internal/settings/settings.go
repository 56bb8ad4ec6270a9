// Package settings decodes the free-form `settings` maps of the YAML
// configuration (rpc_bus.settings, targets.<name>.settings, plugin settings)
// into typed structs, strictly: an unknown key or a value of the wrong type
// is an error that names the key.
package settings

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
)

// Decode fills into, a pointer to a struct whose fields carry json tags,
// from m. prefix is the YAML path of m for error messages, such as
// "rpc_bus.settings". Keys absent from m leave their fields as they are, so
// callers set defaults before decoding.
func Decode(prefix string, m map[string]any, into any) error {
	v := reflect.ValueOf(into).Elem()
	fields := fieldsByKey(v.Type())
	for _, k := range sortedKeys(m) {
		i, ok := fields[k]
		if !ok {
			return fmt.Errorf("%s: unknown key %q (known: %s)", prefix, k, strings.Join(Keys(into), ", "))
		}
		if err := set(k, v.FieldByIndex(i), m[k]); err != nil {
			return fmt.Errorf("%s.%s: %w", prefix, k, err)
		}
	}
	return nil
}

// DecodeKeys decodes m strictly into one or more settings structs, as
// Decode does into one: each key goes to the first of into that has it.
// The first bad key, in sorted order, is returned as a *KeyError whose Key
// is the key of m, for the caller to report in its own error type with its
// own prefix: an unknown key (listing the known ones, and the nearest as a
// likely typo), or a value of the wrong type.
func DecodeKeys(m map[string]any, into ...any) *KeyError {
	vals := make([]reflect.Value, len(into))
	fields := make([]map[string][]int, len(into))
	for n, p := range into {
		vals[n] = reflect.ValueOf(p).Elem()
		fields[n] = fieldsByKey(vals[n].Type())
	}
	for _, k := range sortedKeys(m) {
		n := slices.IndexFunc(fields, func(f map[string][]int) bool { _, ok := f[k]; return ok })
		if n < 0 {
			return &KeyError{Key: k, Err: unknownKey(k, into)}
		}
		if err := set(k, vals[n].FieldByIndex(fields[n][k]), m[k]); err != nil {
			return &KeyError{Key: k, Err: err}
		}
	}
	return nil
}

// unknownKey is the problem with a key none of into has.
func unknownKey(k string, into []any) error {
	var known []string
	for _, p := range into {
		known = append(known, Keys(p)...)
	}
	slices.Sort(known)
	known = slices.Compact(known)
	hint := ""
	if s := Closest(k, known); s != "" {
		hint = "did you mean " + s + "? "
	}
	return fmt.Errorf("unknown key (%sknown: %s)", hint, strings.Join(known, ", "))
}

// set decodes value, as go-zero's conf hands it over from YAML, into f,
// the field of key.
func set(key string, f reflect.Value, value any) error {
	b, err := json.Marshal(value)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, f.Addr().Interface()); err != nil {
		if rpcbus.SecretKey(key) { // say what is wrong, not the secret
			return fmt.Errorf("want %s, got a %T", describe(f.Type()), value)
		}
		return fmt.Errorf("want %s, got %s", describe(f.Type()), b)
	}
	return nil
}

// sortedKeys are the keys of m in order, so that the first bad key is
// reported deterministically.
func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

// Closest returns the key of known nearest to key if key is likely a typo
// of it (at most two edits away), or "" if none is. Of equally near keys
// the first in known wins.
func Closest(key string, known []string) string {
	best, bestD := "", 3
	for _, s := range known {
		if d := editDistance(key, s); d < bestD {
			best, bestD = s, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Keys lists the keys a settings struct accepts, sorted.
func Keys(into any) []string {
	fields := fieldsByKey(reflect.TypeOf(into).Elem())
	return slices.Sorted(maps.Keys(fields))
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
