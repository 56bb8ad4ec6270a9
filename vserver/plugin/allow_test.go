package plugin

import (
	"strings"
	"testing"
)

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
		r, err := ParseAllowRule(tc.allow)
		if err != nil {
			t.Fatalf("%q: %v", tc.allow, err)
		}
		for i, c := range calls {
			if got := r.Match(c.target, c.method); got != tc.want[i] {
				t.Errorf("%q lets in %s %s: %v, want %v", tc.allow, c.target, c.method, got, tc.want[i])
			}
		}
	}
	for _, bad := range []string{"", "/demo.Demo/Ping", "demo/Ping", "demo/demo.Demo/", "demo//Ping", "demo/demo.Demo/Ping/x"} {
		if _, err := ParseAllowRule(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// TestAllowList: a list lets in what one of its rules does; AllowsTarget
// says whether any method of a target could be let in.
func TestAllowList(t *testing.T) {
	l, err := ParseAllowList([]string{"demo/demo.Demo/Ping", "reports"})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Allows("demo", "/demo.Demo/Ping") || l.Allows("demo", "/demo.Demo/Echo") || !l.Allows("reports", "/r.R/X") {
		t.Error("Allows does not follow the rules")
	}
	if !l.AllowsTarget("demo") || !l.AllowsTarget("reports") || l.AllowsTarget("billing") {
		t.Error("AllowsTarget does not follow the rules")
	}
	if (AllowList{}).Allows("demo", "/demo.Demo/Ping") {
		t.Error("an empty list lets a call in")
	}
	if _, err := ParseAllowList([]string{"demo", "demo/Ping"}); err == nil || !strings.Contains(err.Error(), `[1] "demo/Ping"`) {
		t.Errorf("error %v does not name the entry at fault", err)
	}
}
