package plugin

import (
	"fmt"
	"strings"
)

// AllowList is what a client may call: the auth plugin's allow and the
// server's security.clients.<id>.allow. An entry is "*" (anything),
// "<target>" (any method of the target), "<target>/<pkg.Service>/*" (any
// method of a service) or "<target>/<pkg.Service>/<Method>" (one method).
// An empty list allows nothing.
type AllowList []AllowRule

// AllowRule is one entry of an AllowList.
type AllowRule struct {
	Target  string // "*" for any
	Service string // "" for any
	Method  string // "" for any
}

// ParseAllowList reads the entries of an allow-list; an error names the
// entry at fault.
func ParseAllowList(entries []string) (AllowList, error) {
	l := make(AllowList, 0, len(entries))
	for i, a := range entries {
		r, err := ParseAllowRule(a)
		if err != nil {
			return nil, fmt.Errorf("[%d] %q: %w", i, a, err)
		}
		l = append(l, r)
	}
	return l, nil
}

// ParseAllowRule reads one entry of an allow-list.
func ParseAllowRule(a string) (AllowRule, error) {
	if a == "*" {
		return AllowRule{Target: "*"}, nil
	}
	target, rest, hasMethod := strings.Cut(a, "/")
	if target == "" {
		return AllowRule{}, fmt.Errorf(`want "*", "<target>", "<target>/<pkg.Service>/*" or "<target>/<pkg.Service>/<Method>"`)
	}
	if !hasMethod {
		return AllowRule{Target: target}, nil
	}
	svc, m, ok := strings.Cut(rest, "/")
	if !ok || svc == "" || m == "" || strings.Contains(m, "/") {
		return AllowRule{}, fmt.Errorf(`want "%s/<pkg.Service>/*" or "%s/<pkg.Service>/<Method>"`, target, target)
	}
	if m == "*" {
		m = ""
	}
	return AllowRule{Target: target, Service: svc, Method: m}, nil
}

// Match reports whether the rule lets in a call of method (a full gRPC
// method, "/pkg.Service/Method") on target.
func (r AllowRule) Match(target, method string) bool {
	if r.Target != "*" && r.Target != target {
		return false
	}
	if r.Service == "" {
		return true
	}
	svc, m, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	return svc == r.Service && (r.Method == "" || r.Method == m)
}

// Allows reports whether some rule lets in a call of method on target.
func (l AllowList) Allows(target, method string) bool {
	for _, r := range l {
		if r.Match(target, method) {
			return true
		}
	}
	return false
}

// AllowsTarget reports whether some rule lets in some method of target: a
// request for a target the client may not call at all is refused before
// its method is looked up.
func (l AllowList) AllowsTarget(target string) bool {
	for _, r := range l {
		if r.Target == "*" || r.Target == target {
			return true
		}
	}
	return false
}
