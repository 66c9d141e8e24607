package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ErrMalformedPolicy is a policy document IAM would refuse.
var ErrMalformedPolicy = errors.New("malformed policy document")

// Policy is a parsed policy document.
type Policy struct {
	Version    string
	Statements []Statement
}

// Statement is one statement of a policy.
type Statement struct {
	Sid          string
	Allow        bool
	Principal    *Principals // resource and trust policies
	NotPrincipal *Principals
	Action       []string
	NotAction    []string
	Resource     []string
	NotResource  []string
	Conditions   []condition
}

// Principals is a statement's Principal: "*" or by kind.
type Principals struct {
	Any     bool
	AWS     []string
	Service []string
}

type condition struct {
	op       string // as written, e.g. StringLike
	base     string // without IfExists and set prefix, lower case
	ifExists bool
	set      string // "", "forallvalues", "foranyvalue"
	key      string // lower case
	values   []string
	negated  bool
}

// strs is a JSON string or array of strings (and numbers or booleans
// in conditions, kept as their text).
type strs []string

func (s *strs) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		out := make([]string, 0, len(raw))
		for _, r := range raw {
			v, err := scalar(r)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		*s = out
		return nil
	}
	v, err := scalar(b)
	if err != nil {
		return err
	}
	*s = []string{v}
	return nil
}

func scalar(b []byte) (string, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("%s is not a string", b)
}

type wireStatement struct {
	Sid          string                     `json:"Sid"`
	Effect       string                     `json:"Effect"`
	Principal    json.RawMessage            `json:"Principal"`
	NotPrincipal json.RawMessage            `json:"NotPrincipal"`
	Action       *strs                      `json:"Action"`
	NotAction    *strs                      `json:"NotAction"`
	Resource     *strs                      `json:"Resource"`
	NotResource  *strs                      `json:"NotResource"`
	Condition    map[string]map[string]strs `json:"Condition"`
}

// ParsePolicy parses and checks a policy document. resourcePolicy says
// whether statements name a Principal (resource and trust policies) or
// must not (identity policies).
func ParsePolicy(doc string, resourcePolicy bool) (*Policy, error) {
	var w struct {
		Version   string          `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(doc), &w); err != nil {
		return nil, fmt.Errorf("%w: Syntax errors in policy: %v", ErrMalformedPolicy, err)
	}
	if w.Version != "" && w.Version != "2012-10-17" && w.Version != "2008-10-17" {
		return nil, fmt.Errorf("%w: The policy must contain a valid version string", ErrMalformedPolicy)
	}
	var stmts []wireStatement
	raw := bytes.TrimSpace(w.Statement)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, fmt.Errorf("%w: Missing required field Statement", ErrMalformedPolicy)
	case raw[0] == '{':
		var one wireStatement
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, fmt.Errorf("%w: Syntax errors in policy: %v", ErrMalformedPolicy, err)
		}
		stmts = []wireStatement{one}
	default:
		if err := json.Unmarshal(raw, &stmts); err != nil {
			return nil, fmt.Errorf("%w: Syntax errors in policy: %v", ErrMalformedPolicy, err)
		}
	}
	p := &Policy{Version: w.Version}
	for _, ws := range stmts {
		st, err := compile(ws, resourcePolicy)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformedPolicy, err)
		}
		p.Statements = append(p.Statements, st)
	}
	return p, nil
}

func compile(ws wireStatement, resourcePolicy bool) (Statement, error) {
	st := Statement{Sid: ws.Sid}
	switch ws.Effect {
	case "Allow":
		st.Allow = true
	case "Deny":
	default:
		return st, errors.New("Effect must be Allow or Deny")
	}
	if (ws.Action == nil) == (ws.NotAction == nil) {
		return st, errors.New("a statement needs exactly one of Action and NotAction")
	}
	if ws.Action != nil {
		st.Action = *ws.Action
	} else {
		st.NotAction = *ws.NotAction
	}
	for _, a := range append(append([]string{}, st.Action...), st.NotAction...) {
		if a != "*" && !strings.Contains(a, ":") {
			return st, fmt.Errorf("Actions/Conditions must be prefaced by a vendor, e.g., iam, sqs, lambda: %q", a)
		}
	}
	hasPrincipal := len(ws.Principal) > 0 || len(ws.NotPrincipal) > 0
	if resourcePolicy && !hasPrincipal {
		return st, errors.New("Missing required field Principal")
	}
	if !resourcePolicy && hasPrincipal {
		return st, errors.New("Policy document should not specify a principal.")
	}
	var err error
	if len(ws.Principal) > 0 {
		if st.Principal, err = parsePrincipals(ws.Principal); err != nil {
			return st, err
		}
	}
	if len(ws.NotPrincipal) > 0 {
		if st.NotPrincipal, err = parsePrincipals(ws.NotPrincipal); err != nil {
			return st, err
		}
	}
	if ws.Resource != nil && ws.NotResource != nil {
		return st, errors.New("a statement has Resource or NotResource, not both")
	}
	switch {
	case ws.Resource != nil:
		st.Resource = *ws.Resource
	case ws.NotResource != nil:
		st.NotResource = *ws.NotResource
	case !resourcePolicy:
		return st, errors.New("Policy statement must contain resources.")
	}
	for op, keys := range ws.Condition {
		for key, vals := range keys {
			c, err := newCondition(op, key, vals)
			if err != nil {
				return st, err
			}
			st.Conditions = append(st.Conditions, c)
		}
	}
	return st, nil
}

func parsePrincipals(raw json.RawMessage) (*Principals, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s != "*" {
			return nil, fmt.Errorf("Invalid principal in policy: %q", s)
		}
		return &Principals{Any: true}, nil
	}
	var m map[string]strs
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("Invalid principal in policy: %v", err)
	}
	p := &Principals{}
	for k, v := range m {
		switch k {
		case "AWS":
			for _, a := range v {
				if a == "*" {
					p.Any = true
				}
				p.AWS = append(p.AWS, a)
			}
		case "Service":
			p.Service = append(p.Service, v...)
		case "Federated", "CanonicalUser":
			// Known kinds that never sign requests to Stratus.
		default:
			return nil, fmt.Errorf("Invalid principal in policy: %q", k)
		}
	}
	return p, nil
}

// The condition operators Stratus evaluates; others are refused when the
// policy is stored, so no policy means something other than it says.
func newCondition(op, key string, vals strs) (condition, error) {
	c := condition{op: op, key: strings.ToLower(key), values: vals}
	base := op
	if p, rest, ok := strings.Cut(base, ":"); ok {
		c.set = strings.ToLower(p)
		if c.set != "forallvalues" && c.set != "foranyvalue" {
			return c, fmt.Errorf("unknown condition operator %q", op)
		}
		base = rest
	}
	if b, ok := strings.CutSuffix(base, "IfExists"); ok {
		c.ifExists, base = true, b
	}
	c.base = strings.ToLower(base)
	switch c.base {
	case "stringequals", "arnequals", "arnlike", "stringlike":
	case "stringnotequals", "arnnotequals", "arnnotlike", "stringnotlike":
		c.negated = true
	case "stringequalsignorecase":
	case "stringnotequalsignorecase":
		c.negated = true
	case "bool", "null":
	case "numericequals", "numericlessthan", "numericlessthanequals", "numericgreaterthan", "numericgreaterthanequals":
		for _, v := range vals {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return c, fmt.Errorf("%s needs numbers, not %q", op, v)
			}
		}
	case "numericnotequals":
		c.negated = true
	case "dateequals", "datelessthan", "datelessthanequals", "dategreaterthan", "dategreaterthanequals":
		for _, v := range vals {
			if _, ok := parseDate(v); !ok {
				return c, fmt.Errorf("%s needs dates, not %q", op, v)
			}
		}
	case "datenotequals":
		c.negated = true
	case "ipaddress":
	case "notipaddress":
		c.negated = true
	default:
		return c, fmt.Errorf("unknown condition operator %q", op)
	}
	return c, nil
}

// match compares one request value with one policy value, for the
// operator without its negation.
func (c *condition) match(want, got string) bool {
	switch c.base {
	case "stringequals", "stringnotequals", "arnequals", "arnnotequals":
		return want == got
	case "stringequalsignorecase", "stringnotequalsignorecase":
		return strings.EqualFold(want, got)
	case "stringlike", "stringnotlike", "arnlike", "arnnotlike":
		return Wildcard(want, got, false)
	case "bool":
		return strings.EqualFold(want, got)
	case "numericequals", "numericnotequals", "numericlessthan", "numericlessthanequals", "numericgreaterthan", "numericgreaterthanequals":
		w, err1 := strconv.ParseFloat(want, 64)
		g, err2 := strconv.ParseFloat(got, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		switch c.base {
		case "numericlessthan":
			return g < w
		case "numericlessthanequals":
			return g <= w
		case "numericgreaterthan":
			return g > w
		case "numericgreaterthanequals":
			return g >= w
		}
		return g == w
	case "dateequals", "datenotequals", "datelessthan", "datelessthanequals", "dategreaterthan", "dategreaterthanequals":
		w, ok1 := parseDate(want)
		g, ok2 := parseDate(got)
		if !ok1 || !ok2 {
			return false
		}
		switch c.base {
		case "datelessthan":
			return g.Before(w)
		case "datelessthanequals":
			return !g.After(w)
		case "dategreaterthan":
			return g.After(w)
		case "dategreaterthanequals":
			return !g.Before(w)
		}
		return g.Equal(w)
	case "ipaddress", "notipaddress":
		pfx, err := netip.ParsePrefix(want)
		if err != nil {
			a, err2 := netip.ParseAddr(want)
			if err2 != nil {
				return false
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		a, err := netip.ParseAddr(got)
		return err == nil && pfx.Contains(a.Unmap())
	}
	return false
}

func parseDate(s string) (time.Time, bool) {
	for _, f := range []string{time.RFC3339, "2006-01-02T15:04:05Z", "2006-01-02"} {
		if t, err := time.Parse(f, s); err == nil {
			return t, true
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), true
	}
	return time.Time{}, false
}

// holds evaluates the condition on the request's values of its key.
func (c *condition) holds(ctx map[string][]string) bool {
	got, present := ctx[c.key]
	if c.base == "null" {
		want := len(c.values) > 0 && strings.EqualFold(c.values[0], "true")
		return want == !present
	}
	if !present {
		// A missing key: IfExists and the negated operators hold,
		// the rest do not (ForAllValues holds on an empty set).
		return c.ifExists || c.negated || c.set == "forallvalues"
	}
	anyOf := func(g string) bool {
		for _, w := range c.values {
			if c.match(w, g) {
				return true
			}
		}
		return false
	}
	switch c.set {
	case "forallvalues":
		for _, g := range got {
			if anyOf(g) == c.negated {
				return false
			}
		}
		return true
	case "foranyvalue":
		for _, g := range got {
			if anyOf(g) != c.negated {
				return true
			}
		}
		return false
	}
	// A single-valued key: any listed value matches (for the negated
	// operators, none may).
	for _, g := range got {
		if anyOf(g) {
			return !c.negated
		}
	}
	return c.negated
}

// Wildcard matches s against pattern with * (any run) and ? (any one
// character); foldCase for action names, which are case-insensitive.
func Wildcard(pattern, s string, foldCase bool) bool {
	if foldCase {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	// Iterative matching with one backtrack point: linear in practice
	// and never exponential, whatever the pattern.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Request is what a policy is evaluated against.
type Request struct {
	Action    string
	Resource  string
	Principal *Principal // nil for a service principal
	Service   string     // a service principal such as apigateway.amazonaws.com
	Context   map[string][]string
}

// Effect is a policy's answer.
type Effect int

const (
	NoMatch Effect = iota
	Allowed
	DeniedExplicitly
)

// Evaluate is the effect of p on req: a matching Deny wins, else a
// matching Allow, else nothing.
func (p *Policy) Evaluate(req *Request) Effect {
	if p == nil {
		return NoMatch
	}
	out := NoMatch
	for i := range p.Statements {
		st := &p.Statements[i]
		if !st.matches(req) {
			continue
		}
		if !st.Allow {
			return DeniedExplicitly
		}
		out = Allowed
	}
	return out
}

func (st *Statement) matches(req *Request) bool {
	if st.Action != nil && !anyWildcard(st.Action, req.Action, true) {
		return false
	}
	if st.NotAction != nil && anyWildcard(st.NotAction, req.Action, true) {
		return false
	}
	if st.Resource != nil && !anyWildcard(st.Resource, req.Resource, false) {
		return false
	}
	if st.NotResource != nil && anyWildcard(st.NotResource, req.Resource, false) {
		return false
	}
	if st.Principal != nil && !st.Principal.match(req) {
		return false
	}
	if st.NotPrincipal != nil && st.NotPrincipal.match(req) {
		return false
	}
	for i := range st.Conditions {
		if !st.Conditions[i].holds(req.Context) {
			return false
		}
	}
	return true
}

func anyWildcard(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if Wildcard(p, s, fold) {
			return true
		}
	}
	return false
}

// match reports whether the request's principal is one of ps.
func (ps *Principals) match(req *Request) bool {
	if req.Service != "" {
		for _, s := range ps.Service {
			if s == req.Service {
				return true
			}
		}
		return ps.Any
	}
	if ps.Any {
		return true
	}
	p := req.Principal
	if p == nil {
		return false
	}
	for _, a := range ps.AWS {
		switch a {
		case Account, "arn:aws:iam::" + Account + ":root":
			// The account stands for its root; its users and roles
			// need identity policies of their own.
			if p.Kind == Root {
				return true
			}
		case p.ARN, p.IAMARN():
			return true
		}
	}
	return false
}

// ValidatePolicy checks an identity policy document.
func ValidatePolicy(doc string) error {
	_, err := ParsePolicy(doc, false)
	return err
}
