package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCrontabParseErrors(t *testing.T) {
	// Messages are Celery 5.2.6's for the same input.
	for _, tc := range []struct{ spec, want string }{
		{"*/0", "slice step cannot be zero"},
		{"a", "Invalid weekday literal 'a'."},
		{"1-", "Invalid weekday literal '1-'."},
		{"60", "Invalid end range: 60 > 59."},
		{"*/", "empty filter"},
		{"1,,2", "empty part"},
		{"-1", "negative numbers not supported"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := ParseCrontab(tc.spec, "*", "*", "*", "*")
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want a FieldError", err)
			}
			if fe.Field != "minute" || fe.Msg != tc.want {
				t.Errorf("got %s / %q, want minute / %q", fe.Field, fe.Msg, tc.want)
			}
		})
	}
}

func TestCrontabParseSets(t *testing.T) {
	for _, tc := range []struct {
		spec     string
		max, min int
		want     []int
	}{
		{"mon", 7, 0, []int{1}},
		{"Sunday", 7, 0, []int{0}},
		{"mon-fri", 7, 0, []int{1, 2, 3, 4, 5}},
		{"fri-mon", 7, 0, []int{0, 1, 5, 6}},
		{"*/3", 31, 1, []int{1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31}},
		{"2-12/2", 12, 1, []int{2, 4, 6, 8, 10, 12}},
		{"23-1", 24, 0, []int{0, 1, 23}},
		{"1-2-3", 60, 0, []int{1, 2}}, // Celery matches the prefix and ignores the rest
	} {
		t.Run(tc.spec, func(t *testing.T) {
			set, err := parseCronField(tc.spec, tc.max, tc.min)
			if err != nil {
				t.Fatal(err)
			}
			var want uint64
			for _, v := range tc.want {
				want |= 1 << uint(v)
			}
			if set != want {
				t.Errorf("got %b, want %b", set, want)
			}
		})
	}
}

func london(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// runs fires s from start to end as beat does (fire when due, record the
// firing time as the last run) and returns the firing times.
func runs(s Schedule, start, end time.Time) []time.Time {
	var out []time.Time
	last := start
	for {
		next := s.Next(last)
		if next.IsZero() || next.After(end) {
			return out
		}
		out = append(out, next)
		last = next
	}
}

func TestCrontabDST(t *testing.T) {
	loc := london(t)
	cr := func(min, hour string) *Crontab {
		c, err := ParseCrontab(min, hour, "*", "*", "*")
		if err != nil {
			t.Fatal(err)
		}
		c.Loc = loc
		return c
	}
	fmtAll := func(ts []time.Time) string {
		var s []string
		for _, x := range ts {
			s = append(s, x.In(loc).Format("01-02 15:04 MST"))
		}
		return strings.Join(s, ", ")
	}
	for _, tc := range []struct {
		name       string
		s          *Crontab
		start, end time.Time
		want       string
	}{
		// Clocks go forward at 01:00 GMT on 29 March 2026: 01:30 does not
		// exist; the daily run happens when the gap ends, not a day later.
		{"forward daily 01:30", cr("30", "1"), time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC),
			"03-29 02:00 BST, 03-30 01:30 BST"},
		{"forward hourly", cr("30", "*"), time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 2, 0, 0, 0, time.UTC),
			"03-29 00:30 GMT, 03-29 02:30 BST"},
		// Clocks go back at 02:00 BST on 25 October 2026: 01:30 happens
		// twice; a daily job runs once, an hourly job every real hour.
		{"back daily 01:30", cr("30", "1"), time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 12, 0, 0, 0, time.UTC),
			"10-25 01:30 BST, 10-26 01:30 GMT"},
		{"back hourly", cr("30", "*"), time.Date(2026, 10, 24, 23, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 3, 0, 0, 0, time.UTC),
			"10-25 00:30 BST, 10-25 01:30 BST, 10-25 01:30 GMT, 10-25 02:30 GMT"},
		{"back every 15 min in hour 1", cr("*/15", "1"), time.Date(2026, 10, 24, 23, 50, 0, 0, time.UTC), time.Date(2026, 10, 25, 3, 0, 0, 0, time.UTC),
			"10-25 01:00 BST, 10-25 01:15 BST, 10-25 01:30 BST, 10-25 01:45 BST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmtAll(runs(tc.s, tc.start, tc.end)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestCrontabImpossible(t *testing.T) {
	c, err := ParseCrontab("0", "0", "*", "31", "2")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); !got.IsZero() {
		t.Errorf("31 February: got %v, want Never", got)
	}
}

func TestEveryAndClocked(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 7, 23, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30s", 30 * time.Second, false}, {"5m", 5 * time.Minute, false}, {"1h30m", 90 * time.Minute, false},
		{"30", 30 * time.Second, false}, {"2.5", 2500 * time.Millisecond, false},
		{"0", 0, true}, {"-5s", 0, true}, {"soon", 0, true}, {"30x", 0, true}, {"NaN", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			d, err := ParseEvery(tc.in)
			if (err != nil) != tc.err || d != tc.want {
				t.Errorf("got %v, %v; want %v, err %v", d, err, tc.want, tc.err)
			}
		})
	}
	c := &Clocked{At: t0}
	if got := c.Next(time.Time{}); !got.Equal(t0) {
		t.Errorf("clocked before run: %v", got)
	}
	if got := c.Next(t0.Add(time.Second)); !got.IsZero() {
		t.Errorf("clocked after run: %v", got)
	}
}

func TestSolarErrors(t *testing.T) {
	for _, tc := range []struct {
		ev       string
		lat, lon float64
		want     string
	}{
		{"moonrise", 0, 0, "Invalid event specified: moonrise."},
		{"sunrise", 91, 0, "Invalid latitude: 91"},
		{"sunrise", 0, -181, "Invalid longitude: -181"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := NewSolar(tc.ev, tc.lat, tc.lon)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	// Polar night: no sunrise at Longyearbyen in December; Celery checks
	// again a minute after the next lower transit.
	s, err := NewSolar("sunrise", 78.22, 15.65)
	if err != nil {
		t.Fatal(err)
	}
	last := time.Date(2026, 12, 21, 12, 0, 0, 0, time.UTC)
	if next := s.Next(last); next.Sub(last) <= 0 || next.Sub(last) > 24*time.Hour {
		t.Errorf("polar night: next check %v after %v", next, last)
	}
}

func FuzzParseCrontab(f *testing.F) {
	for _, s := range []string{"*", "*/15", "1,13,30-45,50-59/2", "mon-fri", "23-1", "1-2-3", "*/0", "", ",", "-1", "sat/2", "9999999999999999999"} {
		f.Add(s, "*", s)
	}
	f.Fuzz(func(t *testing.T, minute, hour, dow string) {
		c, err := ParseCrontab(minute, hour, dow, "*", "*")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if c.Minute == 0 || c.Minute>>60 != 0 || c.Hour>>24 != 0 || c.DayOfWeek>>7 != 0 {
			t.Fatalf("sets out of range: %b %b %b", c.Minute, c.Hour, c.DayOfWeek)
		}
		last := time.Date(2026, 5, 5, 5, 5, 5, 0, time.UTC)
		if n := c.Next(last); !n.IsZero() && !n.After(last) {
			t.Fatalf("Next(%v) = %v, not after", last, n)
		}
	})
}
