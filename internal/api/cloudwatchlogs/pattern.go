package cloudwatchlogs

import (
	"encoding/json"
	"path"
	"strconv"
	"strings"

	"github.com/stratus-faas/stratus/internal/logs"
)

// ParsePattern compiles a filter pattern of the subset Stratus supports:
// terms that must all appear (case-sensitive; "quoted" for phrases), ?terms
// of which one must, -terms that must not, and JSON patterns
// { $.field OP value && ... || ... } comparing a field of a JSON event
// (= and != with strings, * as a wildcard; =, !=, <, <=, >, >= with
// numbers). An empty pattern matches every event.
func ParsePattern(p string) (func(logs.Event) bool, error) {
	p = strings.TrimSpace(p)
	if p == "" {
		return func(logs.Event) bool { return true }, nil
	}
	if strings.HasPrefix(p, "{") {
		if !strings.HasSuffix(p, "}") {
			return nil, invalid("Invalid filter pattern: a JSON pattern ends with }")
		}
		return parseJSONPattern(strings.TrimSpace(p[1 : len(p)-1]))
	}
	if strings.HasPrefix(p, "[") {
		return nil, invalid("Stratus does not support space-delimited filter patterns ([...])")
	}
	var all, any, none []string
	for p != "" {
		var t string
		prefix := byte(0)
		if p[0] == '?' || p[0] == '-' {
			prefix, p = p[0], p[1:]
		}
		if strings.HasPrefix(p, `"`) {
			end := strings.IndexByte(p[1:], '"')
			if end < 0 {
				return nil, invalid("Invalid filter pattern: unterminated quote")
			}
			t, p = p[1:end+1], p[end+2:]
		} else {
			i := strings.IndexAny(p, " \t")
			if i < 0 {
				i = len(p)
			}
			t, p = p[:i], p[i:]
		}
		p = strings.TrimLeft(p, " \t")
		if t == "" {
			continue
		}
		switch prefix {
		case '?':
			any = append(any, t)
		case '-':
			none = append(none, t)
		default:
			all = append(all, t)
		}
	}
	return func(ev logs.Event) bool {
		for _, t := range all {
			if !strings.Contains(ev.Message, t) {
				return false
			}
		}
		for _, t := range none {
			if strings.Contains(ev.Message, t) {
				return false
			}
		}
		if len(any) == 0 {
			return true
		}
		for _, t := range any {
			if strings.Contains(ev.Message, t) {
				return true
			}
		}
		return false
	}, nil
}

// cond is one comparison of a JSON pattern.
type cond struct {
	path  []string
	op    string
	str   string
	num   float64
	isNum bool
}

// parseJSONPattern reads "c1 && c2 || c3" (&& binds tighter).
func parseJSONPattern(body string) (func(logs.Event) bool, error) {
	var alts [][]cond
	for _, alt := range strings.Split(body, "||") {
		var conds []cond
		for _, c := range strings.Split(alt, "&&") {
			cd, err := parseCond(strings.TrimSpace(strings.Trim(strings.TrimSpace(c), "()")))
			if err != nil {
				return nil, err
			}
			conds = append(conds, cd)
		}
		alts = append(alts, conds)
	}
	return func(ev logs.Event) bool {
		var doc any
		if json.Unmarshal([]byte(ev.Message), &doc) != nil {
			return false
		}
		for _, conds := range alts {
			ok := true
			for _, c := range conds {
				if !c.holds(doc) {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
		return false
	}, nil
}

func parseCond(s string) (cond, error) {
	if !strings.HasPrefix(s, "$.") {
		return cond{}, invalid("Invalid filter pattern: a JSON condition starts with $.field, got %q", s)
	}
	i := strings.IndexAny(s, "=!<>")
	if i < 0 {
		return cond{}, invalid("Invalid filter pattern: no comparison in %q", s)
	}
	field := strings.TrimSpace(s[2:i])
	rest := s[i:]
	var op string
	for _, o := range []string{"!=", "<=", ">=", "=", "<", ">"} {
		if strings.HasPrefix(rest, o) {
			op = o
			break
		}
	}
	if op == "" || field == "" {
		return cond{}, invalid("Invalid filter pattern: bad comparison in %q", s)
	}
	v := strings.TrimSpace(rest[len(op):])
	c := cond{path: strings.Split(field, "."), op: op}
	if uq, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
		c.str = uq
	} else if n, err := strconv.ParseFloat(v, 64); err == nil {
		c.num, c.isNum, c.str = n, true, v
	} else {
		c.str = v
	}
	if !c.isNum && op != "=" && op != "!=" {
		return cond{}, invalid("Invalid filter pattern: %s compares numbers only", op)
	}
	return c, nil
}

func (c cond) holds(doc any) bool {
	v := doc
	for _, k := range c.path {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[k]; !ok {
			return false
		}
	}
	switch x := v.(type) {
	case float64:
		if !c.isNum {
			return c.op == "!="
		}
		switch c.op {
		case "=":
			return x == c.num
		case "!=":
			return x != c.num
		case "<":
			return x < c.num
		case "<=":
			return x <= c.num
		case ">":
			return x > c.num
		case ">=":
			return x >= c.num
		}
	case string:
		ok, _ := path.Match(c.str, x)
		if !strings.ContainsAny(c.str, "*?[") {
			ok = x == c.str
		}
		if c.op == "!=" {
			return !ok
		}
		return c.op == "=" && ok
	case bool:
		if c.op == "=" {
			return strconv.FormatBool(x) == c.str
		}
		return c.op == "!=" && strconv.FormatBool(x) != c.str
	}
	return false
}
