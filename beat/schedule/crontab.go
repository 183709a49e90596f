package schedule

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Crontab matches wall-clock minutes, as Celery's crontab does. Sets are
// bitmasks; DayOfWeek uses 0 = Sunday.
type Crontab struct {
	Minute, Hour, DayOfWeek, DayOfMonth, MonthOfYear uint64
	// Orig holds the fields as written, for String and for storage.
	Orig [5]string
	// Loc is the zone whose wall clock the fields match; nil means UTC.
	Loc *time.Location
}

// CrontabField names a crontab field in errors.
var crontabFields = [5]struct {
	name     string
	max, min int
}{
	{"minute", 60, 0}, {"hour", 24, 0}, {"day_of_week", 7, 0}, {"day_of_month", 31, 1}, {"month_of_year", 12, 1},
}

// FieldError says which crontab field did not parse and why, with Celery's message.
type FieldError struct {
	Field, Value, Msg string
}

func (e *FieldError) Error() string { return fmt.Sprintf("crontab %s %q: %s", e.Field, e.Value, e.Msg) }

// Unwrap makes every FieldError an ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// ParseCrontab parses the five fields in Celery's argument order: minute,
// hour, day_of_week, day_of_month, month_of_year. Empty fields mean "*".
func ParseCrontab(minute, hour, dayOfWeek, dayOfMonth, monthOfYear string) (*Crontab, error) {
	c := &Crontab{Orig: [5]string{minute, hour, dayOfWeek, dayOfMonth, monthOfYear}}
	sets := [5]*uint64{&c.Minute, &c.Hour, &c.DayOfWeek, &c.DayOfMonth, &c.MonthOfYear}
	for i, f := range crontabFields {
		if c.Orig[i] == "" {
			c.Orig[i] = "*"
		}
		set, err := parseCronField(c.Orig[i], f.max, f.min)
		if err != nil {
			return nil, &FieldError{Field: f.name, Value: c.Orig[i], Msg: err.Error()}
		}
		*sets[i] = set
	}
	return c, nil
}

var (
	reRangeSteps = regexp.MustCompile(`^(\w+?)-(\w+)/(\w+)?`)
	reRange      = regexp.MustCompile(`^(\w+?)-(\w+)`)
	reStarSteps  = regexp.MustCompile(`^\*/(\w+)?`)
	reStar       = regexp.MustCompile(`^\*$`)
	dayNames     = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
)

type cronErr string

func (e cronErr) Error() string { return string(e) }

// parseCronField is Celery's crontab_parser(max, min).parse plus the range
// check of crontab._expand_cronspec, with the same quirks (prefix matches,
// wrap-around ranges, day names accepted in any field).
func parseCronField(spec string, max, min int) (uint64, error) {
	var acc uint64
	for _, part := range strings.Split(spec, ",") {
		if part == "" {
			return 0, cronErr("empty part")
		}
		vals, err := parseCronPart(part, max, min)
		if err != nil {
			return 0, err
		}
		for _, v := range vals {
			acc |= 1 << uint(v)
		}
	}
	return acc, nil
}

func parseCronPart(part string, max, min int) ([]int, error) {
	if m := reRangeSteps.FindStringSubmatch(part); m != nil {
		if m[3] == "" {
			return nil, cronErr("empty filter")
		}
		r, err := expandRange(m[1], m[2], max, min)
		if err != nil {
			return nil, err
		}
		return steps(r, m[3])
	}
	if m := reRange.FindStringSubmatch(part); m != nil {
		return expandRange(m[1], m[2], max, min)
	}
	if m := reStarSteps.FindStringSubmatch(part); m != nil {
		if m[1] == "" {
			return nil, cronErr("empty filter")
		}
		return steps(star(max, min), m[1])
	}
	if reStar.MatchString(part) {
		return star(max, min), nil
	}
	return expandRange(part, "", max, min)
}

func star(max, min int) []int {
	out := make([]int, 0, max)
	for i := min; i < max+min; i++ {
		out = append(out, i)
	}
	return out
}

func steps(vals []int, step string) ([]int, error) {
	n, err := strconv.Atoi(step)
	if err != nil {
		return nil, cronErr(fmt.Sprintf("invalid literal for int() with base 10: '%s'", step))
	}
	if n == 0 {
		return nil, cronErr("slice step cannot be zero")
	}
	var out []int
	for i := 0; i < len(vals); i += n {
		out = append(out, vals[i])
	}
	return out, nil
}

func expandRange(from, to string, max, min int) ([]int, error) {
	fr, err := expandNumber(from, max, min)
	if err != nil {
		return nil, err
	}
	if to == "" {
		return []int{fr}, nil
	}
	t, err := expandNumber(to, max, min)
	if err != nil {
		return nil, err
	}
	var out []int
	if t < fr { // wrap around, as Celery does
		for i := fr; i < min+max; i++ {
			out = append(out, i)
		}
		for i := min; i <= t; i++ {
			out = append(out, i)
		}
		return out, nil
	}
	for i := fr; i <= t; i++ {
		out = append(out, i)
	}
	return out, nil
}

func expandNumber(s string, max, min int) (int, error) {
	if strings.HasPrefix(s, "-") {
		return 0, cronErr("negative numbers not supported")
	}
	i, err := strconv.Atoi(s)
	if err != nil || strings.HasPrefix(s, "+") {
		abbr := strings.ToLower(s)
		if len(abbr) > 3 {
			abbr = abbr[:3]
		}
		i = slices.Index(dayNames, abbr)
		if i < 0 {
			return 0, cronErr(fmt.Sprintf("Invalid weekday literal '%s'.", s))
		}
	}
	if maxVal := min + max - 1; i > maxVal {
		return 0, cronErr(fmt.Sprintf("Invalid end range: %d > %d.", i, maxVal))
	}
	if i < min {
		return 0, cronErr(fmt.Sprintf("Invalid beginning range: %d < %d.", i, min))
	}
	return i, nil
}

func (c *Crontab) String() string {
	return fmt.Sprintf("<crontab: %s %s %s %s %s (m/h/dM/MY/d)>", c.Orig[0], c.Orig[1], c.Orig[3], c.Orig[4], c.Orig[2])
}

func has(set uint64, v int) bool { return set&(1<<uint(v)) != 0 }

// maxYears bounds the search for impossible dates (31 February): Celery
// gives up after 2000 roll-overs; a valid crontab matches within 28 years.
const maxYears = 30

// Next returns the first matching minute after last, in Loc's wall clock.
func (c *Crontab) Next(last time.Time) time.Time {
	loc := zoneOr(c.Loc)
	if last.IsZero() {
		last = time.Unix(0, 0)
	}
	l := last.In(loc)
	everyHour := c.Hour == 1<<24-1
	y, mo, d := l.Date()
	day := time.Date(y, mo, d, 12, 0, 0, 0, time.UTC) // noon UTC: a calendar-day cursor
	end := day.AddDate(maxYears, 0, 0)
	for ; day.Before(end); day = day.AddDate(0, 0, 1) {
		if !has(c.MonthOfYear, int(day.Month())) {
			// Skip to the first of the next month.
			day = time.Date(day.Year(), day.Month()+1, 0, 12, 0, 0, 0, time.UTC)
			continue
		}
		if !has(c.DayOfMonth, day.Day()) || !has(c.DayOfWeek, int(day.Weekday())) {
			continue
		}
		for h := 0; h < 24; h++ {
			if !has(c.Hour, h) {
				continue
			}
			for m := 0; m < 60; m++ {
				if !has(c.Minute, m) {
					continue
				}
				if t, ok := wallInstant(day.Year(), day.Month(), day.Day(), h, m, loc, last, everyHour); ok {
					return t
				}
			}
		}
	}
	return Never
}

// wallInstant maps a wall time to the instant it is due, if that is after
// last. A wall time in a spring-forward gap maps to the first instant after
// the gap; one that happens twice maps to its first occurrence, or to its
// second too when everyHour (the second is then a different real hour).
func wallInstant(y int, mo time.Month, d, h, m int, loc *time.Location, last time.Time, everyHour bool) (time.Time, bool) {
	t := time.Date(y, mo, d, h, m, 0, 0, loc)
	if th, tm := t.Hour(), t.Minute(); th != h || tm != m {
		// In a spring-forward gap. Every real hour is still covered when
		// the hour field is "*"; otherwise run when the gap ends, so the
		// day is not skipped.
		if everyHour {
			return time.Time{}, false
		}
		t = gapEnd(t)
	}
	// The earlier and later instants with this wall clock, if ambiguous.
	first, second := t, time.Time{}
	for _, delta := range []time.Duration{-time.Hour, time.Hour, -30 * time.Minute, 30 * time.Minute} {
		o := t.Add(delta)
		if oh, om := o.Hour(), o.Minute(); oh == h && om == m && o.Day() == d {
			if o.Before(first) {
				first, second = o, first
			} else {
				second = o
			}
			break
		}
	}
	if first.After(last) {
		return first, true
	}
	if everyHour && !second.IsZero() && second.After(last) {
		return second, true
	}
	return time.Time{}, false
}

// gapEnd returns the instant the zone transition just before t happened:
// t is a nonexistent wall time that Go normalised past the gap.
func gapEnd(t time.Time) time.Time {
	if start, _ := t.ZoneBounds(); !start.IsZero() && start.Before(t) {
		return start
	}
	return t
}
