package broker

import (
	"fmt"
	"time"
)

// isoLayout is how celeriac writes eta/expires: exactly six fraction digits
// and an explicit offset. Celery 5.2.6 reads the fraction digits as a count
// of microseconds, so Go's trimmed RFC3339Nano (".5") would be read as 5 µs
// and nine digits would be rejected.
const isoLayout = "2006-01-02T15:04:05.000000-07:00"

// dateDoneLayout is Celery 5.2.6's date_done: naive UTC, isoformat().
const dateDoneLayout = "2006-01-02T15:04:05.000000"

// FormatTime formats t the way Celery writes eta and expires headers.
func FormatTime(t time.Time) string {
	if t.Location() == time.Local {
		t = t.UTC()
	}
	return t.Format(isoLayout)
}

// FormatDateDone formats t as Celery 5.2.6 writes date_done (naive UTC).
func FormatDateDone(t time.Time) string {
	return t.UTC().Format(dateDoneLayout)
}

// ParseTime parses the ISO-8601 forms Celery and kombu produce:
// "2024-05-01T12:00:10.123456+00:00", "…Z", naive "2024-05-01T12:00:10"
// (taken as UTC), a space instead of "T", "+0200" offsets, any number of
// fraction digits (read as a decimal fraction), and a bare date.
func ParseTime(s string) (time.Time, error) {
	p := isoParser{s: s}
	t, err := p.parse()
	if err != nil {
		return time.Time{}, fmt.Errorf("broker: unable to parse date string %q: %w", s, err)
	}
	return t, nil
}

type isoParser struct {
	s string
	i int
}

func (p *isoParser) digits(n int) (int, error) {
	if p.i+n > len(p.s) {
		return 0, fmt.Errorf("too short")
	}
	v := 0
	for k := 0; k < n; k++ {
		c := p.s[p.i+k]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("digit expected at %d", p.i+k)
		}
		v = v*10 + int(c-'0')
	}
	p.i += n
	return v, nil
}

func (p *isoParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *isoParser) expect(c byte) error {
	if p.peek() != c {
		return fmt.Errorf("%q expected at %d", c, p.i)
	}
	p.i++
	return nil
}

func (p *isoParser) parse() (time.Time, error) {
	year, err := p.digits(4)
	if err != nil {
		return time.Time{}, err
	}
	if err := p.expect('-'); err != nil {
		return time.Time{}, err
	}
	month, err := p.digits(2)
	if err != nil {
		return time.Time{}, err
	}
	if err := p.expect('-'); err != nil {
		return time.Time{}, err
	}
	day, err := p.digits(2)
	if err != nil {
		return time.Time{}, err
	}
	var hour, minute, sec, nsec int
	loc := time.UTC
	if p.i < len(p.s) {
		if c := p.peek(); c != 'T' && c != 't' && c != ' ' {
			return time.Time{}, fmt.Errorf("date/time separator expected at %d", p.i)
		}
		p.i++
		if hour, err = p.digits(2); err != nil {
			return time.Time{}, err
		}
		if err := p.expect(':'); err != nil {
			return time.Time{}, err
		}
		if minute, err = p.digits(2); err != nil {
			return time.Time{}, err
		}
		if p.peek() == ':' {
			p.i++
			if sec, err = p.digits(2); err != nil {
				return time.Time{}, err
			}
			if c := p.peek(); c == '.' || c == ',' {
				p.i++
				start := p.i
				scale := 100000000
				for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
					nsec += int(p.s[p.i]-'0') * scale
					scale /= 10
					p.i++
				}
				if p.i == start {
					return time.Time{}, fmt.Errorf("fraction digits expected at %d", start)
				}
			}
		}
		switch c := p.peek(); c {
		case 0:
		case 'Z', 'z':
			p.i++
		case '+', '-':
			p.i++
			oh, err := p.digits(2)
			if err != nil {
				return time.Time{}, err
			}
			if p.peek() == ':' {
				p.i++
			}
			om, err := p.digits(2)
			if err != nil {
				return time.Time{}, err
			}
			off := oh*3600 + om*60
			if c == '-' {
				off = -off
			}
			if off != 0 {
				loc = time.FixedZone("", off)
			}
		default:
			return time.Time{}, fmt.Errorf("unexpected %q at %d", c, p.i)
		}
	}
	if p.i != len(p.s) {
		return time.Time{}, fmt.Errorf("trailing text at %d", p.i)
	}
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, fmt.Errorf("field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	if t.Day() != day {
		return time.Time{}, fmt.Errorf("day out of range for month")
	}
	return t, nil
}
