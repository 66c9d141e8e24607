// Package schedule parses EventBridge Scheduler expressions (rate, cron,
// at), keeps schedules in the store, and fires each tick once across all
// nodes by queueing an asynchronous invocation of the target.
package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones for a static binary on any host

	"github.com/stratus-faas/stratus/internal/function"
)

// ErrInvalid marks an expression or setting the caller must fix.
var ErrInvalid = errors.New("validation error")

func invalidf(format string, args ...any) error {
	return function.Errorf(ErrInvalid, "%s", fmt.Sprintf(format, args...))
}

// Expr is a parsed schedule expression.
type Expr interface {
	// Next is the first tick strictly after t, or the zero time if none.
	Next(t time.Time) time.Time
}

// Parse reads rate(...), cron(...) or at(...) in the time zone tz (empty
// is UTC). anchor is when a rate schedule starts counting.
func Parse(expr, tz string, anchor time.Time) (Expr, error) {
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return nil, invalidf("Invalid time zone: %s", tz)
		}
		loc = l
	}
	switch {
	case strings.HasPrefix(expr, "rate(") && strings.HasSuffix(expr, ")"):
		return parseRate(expr[5:len(expr)-1], anchor)
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		return parseCron(expr[5:len(expr)-1], loc)
	case strings.HasPrefix(expr, "at(") && strings.HasSuffix(expr, ")"):
		t, err := time.ParseInLocation("2006-01-02T15:04:05", expr[3:len(expr)-1], loc)
		if err != nil {
			return nil, invalidf("Invalid Schedule Expression %s: at() takes yyyy-mm-ddThh:mm:ss", expr)
		}
		return at(t), nil
	}
	return nil, invalidf("Invalid Schedule Expression %s: use rate(...), cron(...) or at(...)", expr)
}

type at time.Time

func (a at) Next(t time.Time) time.Time {
	if time.Time(a).After(t) {
		return time.Time(a)
	}
	return time.Time{}
}

type rate struct {
	anchor time.Time
	every  time.Duration
}

func parseRate(s string, anchor time.Time) (Expr, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return nil, invalidf("Invalid Schedule Expression rate(%s): use rate(value unit)", s)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 1 {
		return nil, invalidf("Invalid Schedule Expression rate(%s): the value must be a positive whole number", s)
	}
	units := map[string]time.Duration{
		"second": time.Second, "seconds": time.Second, // a Stratus extension
		"minute": time.Minute, "minutes": time.Minute,
		"hour": time.Hour, "hours": time.Hour,
		"day": 24 * time.Hour, "days": 24 * time.Hour,
	}
	u, ok := units[f[1]]
	if !ok {
		return nil, invalidf("Invalid Schedule Expression rate(%s): the unit must be minute(s), hour(s) or day(s) (or second(s))", s)
	}
	if (n == 1) != !strings.HasSuffix(f[1], "s") {
		return nil, invalidf("Invalid Schedule Expression rate(%s): use the singular unit for 1 and the plural otherwise", s)
	}
	return rate{anchor: anchor, every: time.Duration(n) * u}, nil
}

func (r rate) Next(t time.Time) time.Time {
	if t.Before(r.anchor) {
		return r.anchor.Add(r.every)
	}
	k := t.Sub(r.anchor)/r.every + 1
	return r.anchor.Add(k * r.every)
}

// cron is AWS's six-field cron: minutes hours day-of-month month
// day-of-week year, one of the day fields being "?".
type cron struct {
	min, hour, dom, month, dow, year set
	domAny, dowAny                   bool
	loc                              *time.Location
}

type set map[int]bool

var (
	monthNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
	dayNames   = map[string]int{"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
)

func parseCron(s string, loc *time.Location) (Expr, error) {
	f := strings.Fields(s)
	if len(f) != 6 {
		return nil, invalidf("Invalid Schedule Expression cron(%s): cron takes 6 fields: minutes hours day-of-month month day-of-week year", s)
	}
	c := &cron{loc: loc}
	var err error
	fields := []struct {
		dst      *set
		text     string
		lo, hi   int
		names    map[string]int
		question bool
	}{
		{&c.min, f[0], 0, 59, nil, false},
		{&c.hour, f[1], 0, 23, nil, false},
		{&c.dom, f[2], 1, 31, nil, true},
		{&c.month, f[3], 1, 12, monthNames, false},
		{&c.dow, f[4], 1, 7, dayNames, true},
		{&c.year, f[5], 1970, 2199, nil, false},
	}
	for _, fd := range fields {
		if fd.text == "?" {
			if !fd.question {
				return nil, invalidf("Invalid Schedule Expression cron(%s): ? is only for day-of-month or day-of-week", s)
			}
			*fd.dst = nil
			continue
		}
		if *fd.dst, err = parseField(fd.text, fd.lo, fd.hi, fd.names); err != nil {
			return nil, invalidf("Invalid Schedule Expression cron(%s): %v", s, err)
		}
	}
	c.domAny, c.dowAny = f[2] == "?", f[4] == "?"
	if c.domAny == c.dowAny {
		return nil, invalidf("Invalid Schedule Expression cron(%s): exactly one of day-of-month and day-of-week must be ?", s)
	}
	return c, nil
}

func parseField(text string, lo, hi int, names map[string]int) (set, error) {
	out := set{}
	for _, part := range strings.Split(text, ",") {
		up := strings.ToUpper(part)
		if _, isName := names[up]; !isName && (strings.Contains(up, "#") || strings.HasSuffix(up, "L") || strings.HasSuffix(up, "W")) {
			return nil, fmt.Errorf("%q: L, W and # are not supported by Stratus", part)
		}
		step := 1
		if base, st, ok := strings.Cut(part, "/"); ok {
			n, err := strconv.Atoi(st)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("bad step in %q", part)
			}
			step, part = n, base
		}
		from, to := lo, hi
		switch {
		case part == "*":
		case strings.Contains(part, "-"):
			a, b, _ := strings.Cut(part, "-")
			var err error
			if from, err = value(a, names); err != nil {
				return nil, err
			}
			if to, err = value(b, names); err != nil {
				return nil, err
			}
		default:
			v, err := value(part, names)
			if err != nil {
				return nil, err
			}
			from = v
			if step == 1 {
				to = v
			}
		}
		if from < lo || to > hi || from > to {
			return nil, fmt.Errorf("%q is out of range %d-%d", text, lo, hi)
		}
		for v := from; v <= to; v += step {
			out[v] = true
		}
	}
	return out, nil
}

func value(s string, names map[string]int) (int, error) {
	if v, ok := names[strings.ToUpper(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("bad value %q", s)
	}
	return v, nil
}

// Next walks forward field by field, skipping whole years, months, days
// and hours that cannot match.
func (c *cron) Next(t time.Time) time.Time {
	t = t.In(c.loc).Truncate(time.Minute).Add(time.Minute)
	end := t.AddDate(200, 0, 0)
	for t.Before(end) {
		switch {
		case !c.year[t.Year()]:
			t = time.Date(t.Year()+1, 1, 1, 0, 0, 0, 0, c.loc)
		case !c.month[int(t.Month())]:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, c.loc)
		case !c.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, c.loc)
		case !c.hour[t.Hour()]:
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, c.loc)
		case !c.min[t.Minute()]:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}

func (c *cron) dayMatches(t time.Time) bool {
	if c.domAny {
		return c.dow[int(t.Weekday())+1] // AWS numbers Sunday 1
	}
	return c.dom[t.Day()]
}
