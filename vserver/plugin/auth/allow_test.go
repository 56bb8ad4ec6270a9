package auth

import "testing"

// TestAllowRules: each form of an allow entry lets in what it says and
// nothing more; malformed entries are refused.
func TestAllowRules(t *testing.T) {
	calls := []struct{ target, method string }{
		{"demo", "/demo.Demo/Ping"},
		{"demo", "/demo.Demo/Echo"},
		{"demo", "/other.Svc/Ping"},
		{"reports", "/demo.Demo/Ping"},
	}
	for _, tc := range []struct {
		allow string
		want  []bool // per call above
	}{
		{"*", []bool{true, true, true, true}},
		{"demo", []bool{true, true, true, false}},
		{"demo/demo.Demo/*", []bool{true, true, false, false}},
		{"demo/demo.Demo/Ping", []bool{true, false, false, false}},
	} {
		r, err := parseAllow(tc.allow)
		if err != nil {
			t.Fatalf("%q: %v", tc.allow, err)
		}
		for i, c := range calls {
			if got := r.match(c.target, c.method); got != tc.want[i] {
				t.Errorf("%q lets in %s %s: %v, want %v", tc.allow, c.target, c.method, got, tc.want[i])
			}
		}
	}
	for _, bad := range []string{"", "/demo.Demo/Ping", "demo/Ping", "demo/demo.Demo/", "demo//Ping", "demo/demo.Demo/Ping/x"} {
		if _, err := parseAllow(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
