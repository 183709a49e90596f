package beat

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/celeriac/celeriac/beat/schedule"
	"gopkg.in/yaml.v3"
)

// File is a schedule file: Celery's beat_schedule setting as YAML.
//
//	timezone: Europe/London          # default for entries without their own
//	beat_schedule:
//	  add-every-30-seconds:
//	    task: tasks.add
//	    schedule: 30s                # seconds (30, 2.5) or a duration (30s, 5m, 1h30m)
//	    args: [16, 16]
//	    kwargs: {}
//	    options: {queue: default, priority: 5, expires: 60}
//	  nightly-report:
//	    task: reports.nightly
//	    schedule: {crontab: {minute: "0", hour: "3", day_of_week: "mon-fri"}}
//	    timezone: America/New_York   # this entry's crontab runs on New York time
//
// A schedule is a number of seconds or a duration, or one of
//
//	{every: 5m, relative: true}
//	{crontab: {minute, hour, day_of_week, day_of_month, month_of_year}}
//	{clocked: "2026-12-24T18:00:00"}        # once; local to the timezone unless it has an offset
//	{solar: {event: sunset, lat: 51.5, lon: -0.12}}
//
// Options are queue, exchange, routing_key, priority (0-255), expires
// (seconds or a duration), headers (a map) and serializer (json or
// msgpack).
type File struct {
	Timezone *time.Location
	Entries  []Entry
}

// FileError locates a problem in a schedule file.
type FileError struct {
	File  string
	Line  int
	Entry string // "" for file-level problems
	Field string
	Err   error
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Entry != "" {
		fmt.Fprintf(&b, ": entry %q", e.Entry)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// ErrFile is wrapped by schedule-file errors that have no other cause.
var ErrFile = errors.New("beat: bad schedule file")

// LoadFile reads a schedule file.
func LoadFile(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("beat: schedule file: %w", err)
	}
	return ParseFile(path, raw)
}

// ParseFile parses a schedule file's contents; name is used in errors.
func ParseFile(name string, raw []byte) (*File, error) {
	p := &fileParser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, &FileError{File: name, Err: fmt.Errorf("%w: %v", ErrFile, err)}
	}
	f := &File{Timezone: time.UTC}
	if len(doc.Content) == 0 {
		return f, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, p.errf(root, "", "", "the file must be a map with beat_schedule")
	}
	var sched *yaml.Node
	for k, v := range pairs(root) {
		switch k.Value {
		case "timezone":
			loc, err := time.LoadLocation(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode {
				return nil, p.errf(v, "", "timezone", "unknown IANA time zone %q", v.Value)
			}
			f.Timezone = loc
		case "beat_schedule":
			sched = v
		default:
			return nil, p.errf(k, "", k.Value, "unknown setting (use timezone and beat_schedule)")
		}
	}
	if sched == nil {
		return f, nil
	}
	if sched.Kind != yaml.MappingNode {
		return nil, p.errf(sched, "", "beat_schedule", "must be a map of entry names to entries")
	}
	for k, v := range pairs(sched) {
		e, err := p.entry(k.Value, v, f.Timezone)
		if err != nil {
			return nil, err
		}
		f.Entries = append(f.Entries, e)
	}
	sort.Slice(f.Entries, func(i, j int) bool { return f.Entries[i].Name < f.Entries[j].Name })
	return f, nil
}

type fileParser struct{ file string }

func (p *fileParser) errf(n *yaml.Node, entry, field, format string, args ...any) error {
	return &FileError{File: p.file, Line: n.Line, Entry: entry, Field: field, Err: fmt.Errorf("%w: "+format, append([]any{ErrFile}, args...)...)}
}

func (p *fileParser) wrap(n *yaml.Node, entry, field string, err error) error {
	return &FileError{File: p.file, Line: n.Line, Entry: entry, Field: field, Err: err}
}

// pairs iterates a mapping node's keys and values.
func pairs(n *yaml.Node) func(func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !yield(n.Content[i], n.Content[i+1]) {
				return
			}
		}
	}
}

func (p *fileParser) entry(name string, n *yaml.Node, defTZ *time.Location) (Entry, error) {
	e := Entry{Name: name}
	if name == "" {
		return e, p.errf(n, name, "", "entry name is empty")
	}
	if n.Kind != yaml.MappingNode {
		return e, p.errf(n, name, "", "must be a map with task and schedule")
	}
	loc := defTZ
	var schedNode *yaml.Node
	for k, v := range pairs(n) {
		switch k.Value {
		case "task":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return e, p.errf(v, name, "task", "must be a task name")
			}
			e.Task = v.Value
		case "schedule":
			schedNode = v
		case "timezone":
			l, err := time.LoadLocation(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode || v.Value == "" {
				return e, p.errf(v, name, "timezone", "unknown IANA time zone %q", v.Value)
			}
			loc = l
		case "args":
			var args []any
			if err := v.Decode(&args); err != nil || v.Kind != yaml.SequenceNode {
				return e, p.errf(v, name, "args", "must be a list")
			}
			e.Args = jsonable(args).([]any)
		case "kwargs":
			var kw map[string]any
			if err := v.Decode(&kw); err != nil || v.Kind != yaml.MappingNode {
				return e, p.errf(v, name, "kwargs", "must be a map with string keys")
			}
			e.Kwargs = jsonable(kw).(map[string]any)
		case "options":
			if err := p.options(name, v, &e.Options); err != nil {
				return e, err
			}
		case "relative":
			// Celery's entry-level relative flag, for interval schedules.
		default:
			return e, p.errf(k, name, k.Value, "unknown field (use task, schedule, args, kwargs, options, timezone)")
		}
	}
	if e.Task == "" {
		return e, p.errf(n, name, "task", "is required")
	}
	if schedNode == nil {
		return e, p.errf(n, name, "schedule", "is required")
	}
	relative := false
	for k, v := range pairs(n) {
		if k.Value == "relative" {
			if err := v.Decode(&relative); err != nil {
				return e, p.errf(v, name, "relative", "must be true or false")
			}
		}
	}
	s, err := p.schedule(name, schedNode, loc, relative)
	if err != nil {
		return e, err
	}
	e.Schedule = s
	return e, nil
}

func (p *fileParser) schedule(name string, n *yaml.Node, loc *time.Location, relative bool) (schedule.Schedule, error) {
	if n.Kind == yaml.ScalarNode {
		d, err := schedule.ParseEvery(n.Value)
		if err != nil {
			return nil, p.wrap(n, name, "schedule", err)
		}
		return &schedule.Every{Interval: d, Relative: relative, Loc: loc}, nil
	}
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		return nil, p.errf(n, name, "schedule", "must be seconds, a duration, or a map with one of every, crontab, clocked, solar")
	}
	var kind *yaml.Node
	for k, v := range pairs(n) {
		switch k.Value {
		case "every", "crontab", "clocked", "solar":
			if kind != nil {
				return nil, p.errf(k, name, "schedule", "has both %s and %s", kind.Value, k.Value)
			}
			kind = k
			_ = v
		case "relative":
			if err := v.Decode(&relative); err != nil {
				return nil, p.errf(v, name, "schedule.relative", "must be true or false")
			}
		default:
			return nil, p.errf(k, name, "schedule."+k.Value, "unknown (use every, crontab, clocked or solar)")
		}
	}
	if kind == nil {
		return nil, p.errf(n, name, "schedule", "needs one of every, crontab, clocked, solar")
	}
	var v *yaml.Node
	for k, val := range pairs(n) {
		if k == kind {
			v = val
		}
	}
	field := "schedule." + kind.Value
	switch kind.Value {
	case "every":
		if v.Kind != yaml.ScalarNode {
			return nil, p.errf(v, name, field, "must be seconds or a duration")
		}
		d, err := schedule.ParseEvery(v.Value)
		if err != nil {
			return nil, p.wrap(v, name, field, err)
		}
		return &schedule.Every{Interval: d, Relative: relative, Loc: loc}, nil
	case "crontab":
		return p.crontab(name, v, loc)
	case "clocked":
		t, err := parseTime(v.Value, loc)
		if err != nil || v.Kind != yaml.ScalarNode {
			return nil, p.errf(v, name, field, "%q is not a time like 2026-12-24T18:00:00 (optionally with an offset)", v.Value)
		}
		return &schedule.Clocked{At: t}, nil
	}
	return p.solar(name, v)
}

func (p *fileParser) crontab(name string, n *yaml.Node, loc *time.Location) (schedule.Schedule, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n, name, "schedule.crontab", "must be a map of minute, hour, day_of_week, day_of_month, month_of_year")
	}
	order := map[string]int{"minute": 0, "hour": 1, "day_of_week": 2, "day_of_month": 3, "month_of_year": 4}
	var f [5]string
	for k, v := range pairs(n) {
		i, ok := order[k.Value]
		if !ok {
			return nil, p.errf(k, name, "schedule.crontab."+k.Value, "unknown field (use minute, hour, day_of_week, day_of_month, month_of_year)")
		}
		switch v.Kind {
		case yaml.ScalarNode:
			f[i] = v.Value
		case yaml.SequenceNode: // Celery accepts lists of numbers too
			var parts []string
			for _, c := range v.Content {
				if c.Kind != yaml.ScalarNode {
					return nil, p.errf(c, name, "schedule.crontab."+k.Value, "list items must be numbers or names")
				}
				parts = append(parts, c.Value)
			}
			f[i] = strings.Join(parts, ",")
			if f[i] == "" {
				return nil, p.errf(v, name, "schedule.crontab."+k.Value, "empty list")
			}
		default:
			return nil, p.errf(v, name, "schedule.crontab."+k.Value, "must be a string, a number or a list")
		}
	}
	c, err := schedule.ParseCrontab(f[0], f[1], f[2], f[3], f[4])
	if err != nil {
		return nil, p.wrap(n, name, "schedule.crontab", err)
	}
	c.Loc = loc
	return c, nil
}

func (p *fileParser) solar(name string, n *yaml.Node) (schedule.Schedule, error) {
	var s struct {
		Event string   `yaml:"event"`
		Lat   *float64 `yaml:"lat"`
		Lon   *float64 `yaml:"lon"`
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n, name, "schedule.solar", "must be a map of event, lat, lon")
	}
	for k := range pairs(n) {
		if k.Value != "event" && k.Value != "lat" && k.Value != "lon" {
			return nil, p.errf(k, name, "schedule.solar."+k.Value, "unknown field (use event, lat, lon)")
		}
	}
	if err := n.Decode(&s); err != nil || s.Lat == nil || s.Lon == nil {
		return nil, p.errf(n, name, "schedule.solar", "needs event and numeric lat and lon")
	}
	sol, err := schedule.NewSolar(s.Event, *s.Lat, *s.Lon)
	if err != nil {
		return nil, p.wrap(n, name, "schedule.solar", err)
	}
	return sol, nil
}

func (p *fileParser) options(name string, n *yaml.Node, o *Options) error {
	if n.Kind != yaml.MappingNode {
		return p.errf(n, name, "options", "must be a map")
	}
	for k, v := range pairs(n) {
		field := "options." + k.Value
		switch k.Value {
		case "queue", "exchange", "routing_key", "serializer":
			if v.Kind != yaml.ScalarNode {
				return p.errf(v, name, field, "must be a string")
			}
			switch k.Value {
			case "queue":
				o.Queue = v.Value
			case "exchange":
				o.Exchange = v.Value
			case "routing_key":
				o.RoutingKey = v.Value
			case "serializer":
				if v.Value != "json" && v.Value != "msgpack" {
					return p.errf(v, name, field, "%q: use json or msgpack", v.Value)
				}
				o.Serializer = v.Value
			}
		case "priority":
			n, err := strconv.Atoi(v.Value)
			if err != nil || n < 0 || n > 255 || v.Kind != yaml.ScalarNode {
				return p.errf(v, name, field, "%q must be 0..255", v.Value)
			}
			pr := uint8(n)
			o.Priority = &pr
		case "expires":
			d, err := schedule.ParseEvery(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode {
				return p.errf(v, name, field, "%q must be seconds or a duration", v.Value)
			}
			o.Expires = d
		case "headers":
			var h map[string]any
			if err := v.Decode(&h); err != nil || v.Kind != yaml.MappingNode {
				return p.errf(v, name, field, "must be a map")
			}
			o.Headers = jsonable(h).(map[string]any)
		default:
			return p.errf(k, name, field, "unknown option (use queue, exchange, routing_key, priority, expires, headers, serializer)")
		}
	}
	return nil
}

// parseTime reads a clocked time: RFC 3339, or a local time in loc.
func parseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q", s)
}

// jsonable converts YAML-decoded values to what the JSON encoder takes:
// maps with string keys, and integers as int64 where they fit.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil
		}
		return x
	}
	return v
}
