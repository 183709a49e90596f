package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every parse and validation error of this package.
var ErrInvalid = errors.New("schedule: invalid")

// Never is the zero time: Next returns it when a schedule will not run again.
var Never time.Time

// Schedule tells when an entry is due.
type Schedule interface {
	// Next returns the earliest time strictly after last at which the entry
	// is due again, or Never. A zero last means the entry has never run.
	Next(last time.Time) time.Time
	// String describes the schedule as Celery's repr does.
	String() string
}

// Every runs at a fixed interval after the last run, as Celery's
// schedule(run_every) does. With Relative the due time is rounded down to
// the interval's resolution (days, hours, minutes or seconds) in Loc, as
// Celery's relative=True does.
type Every struct {
	Interval time.Duration
	Relative bool
	Loc      *time.Location
}

// NewEvery validates an interval.
func NewEvery(d time.Duration, relative bool) (*Every, error) {
	if d <= 0 {
		return nil, fmt.Errorf("%w: interval %v must be positive", ErrInvalid, d)
	}
	return &Every{Interval: d, Relative: relative}, nil
}

// Next is last+Interval (optionally rounded). A new entry (zero last) is
// due at once only if the caller says so; beat starts new entries with
// last = start, so the first run comes one interval after start, as in Celery.
func (e *Every) Next(last time.Time) time.Time {
	next := last.Add(e.Interval)
	if e.Relative {
		next = resolution(next.In(zoneOr(e.Loc)), e.Interval)
	}
	return next
}

func (e *Every) String() string {
	return fmt.Sprintf("<freq: %s>", e.Interval)
}

// resolution truncates t to the unit of d in t's zone (Celery's delta_resolution).
func resolution(t time.Time, d time.Duration) time.Time {
	y, mo, day := t.Date()
	h, mi, s := t.Clock()
	switch {
	case d >= 24*time.Hour:
		return time.Date(y, mo, day, 0, 0, 0, 0, t.Location())
	case d >= time.Hour:
		return time.Date(y, mo, day, h, 0, 0, 0, t.Location())
	case d >= time.Minute:
		return time.Date(y, mo, day, h, mi, 0, 0, t.Location())
	}
	return time.Date(y, mo, day, h, mi, s, 0, t.Location())
}

// Clocked runs once, at At (django-celery-beat's ClockedSchedule).
type Clocked struct {
	At time.Time
}

// Next returns At until the entry has run at or after it.
func (c *Clocked) Next(last time.Time) time.Time {
	if last.IsZero() || last.Before(c.At) {
		return c.At
	}
	return Never
}

func (c *Clocked) String() string { return "<clocked: " + c.At.UTC().Format(time.RFC3339) + ">" }

func zoneOr(l *time.Location) *time.Location {
	if l == nil {
		return time.UTC
	}
	return l
}

// ParseEvery reads an interval as the YAML file writes it: a number of
// seconds ("30", "2.5") or a Go duration with units ("30s", "5m", "1h30m").
func ParseEvery(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return 0, fmt.Errorf("%w: interval %q must be positive", ErrInvalid, s)
		}
		return d, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, fmt.Errorf("%w: interval %q: use seconds (30) or a duration (30s, 5m, 1h30m)", ErrInvalid, s)
	}
	return Seconds(f)
}

// Seconds turns a number of seconds into a positive duration.
func Seconds(f float64) (time.Duration, error) {
	if !(f > 0) || f > 1e9 {
		return 0, fmt.Errorf("%w: interval %v seconds must be positive (and below 1e9)", ErrInvalid, f)
	}
	return time.Duration(f * float64(time.Second)), nil
}
