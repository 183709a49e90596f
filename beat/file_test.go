package beat

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/beat/schedule"
)

func TestLoadFile(t *testing.T) {
	f, err := LoadFile("testdata/beat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Timezone.String() != "Europe/London" || len(f.Entries) != 7 {
		t.Fatalf("tz %v, %d entries", f.Timezone, len(f.Entries))
	}
	by := map[string]Entry{}
	for _, e := range f.Entries {
		by[e.Name] = e
	}
	add := by["add-every-30-seconds"]
	if ev, ok := add.Schedule.(*schedule.Every); !ok || ev.Interval != 30*time.Second {
		t.Errorf("add schedule %v", add.Schedule)
	}
	if add.Options.Queue != "default" || *add.Options.Priority != 5 || add.Options.Expires != time.Minute || len(add.Args) != 2 {
		t.Errorf("add %+v", add)
	}
	ny := by["ny-open"].Schedule.(*schedule.Crontab)
	if ny.Loc.String() != "America/New_York" || ny.Orig[2] != "1,2,3,4,5" {
		t.Errorf("ny-open %v %v", ny.Loc, ny.Orig)
	}
	// 09:30 New York on a Monday is 14:30 UTC in March before US DST.
	if got := ny.Next(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2026, 3, 2, 14, 30, 0, 0, time.UTC)) {
		t.Errorf("ny-open next %v", got)
	}
	if c := by["new-year"].Schedule.(*schedule.Clocked); !c.At.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("clocked %v (London is UTC in winter)", c.At)
	}
	lights := by["sunset-lights"]
	if lights.Options.Exchange != "home" || lights.Options.RoutingKey != "lights" || lights.Options.Serializer != "msgpack" ||
		lights.Options.Headers["x-source"] != "beat" || lights.Kwargs["level"] != 0.5 || lights.Options.Expires != 5*time.Minute {
		t.Errorf("lights %+v", lights)
	}
	if ev := by["relative-hourly"].Schedule.(*schedule.Every); !ev.Relative {
		t.Error("relative lost")
	}
	if ev := by["ninety"].Schedule.(*schedule.Every); ev.Interval != 90*time.Second {
		t.Errorf("ninety %v", ev.Interval)
	}
}

// The example the deployment files mount must load.
func TestExampleFile(t *testing.T) {
	if _, err := os.Stat("../examples/beat.yaml"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile("../examples/beat.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"bad tz", "timezone: Mars/Olympus\n", `timezone: beat: bad schedule file: unknown IANA time zone "Mars/Olympus"`},
		{"unknown top", "beat_schedul: {}\n", "beat_schedul: beat: bad schedule file: unknown setting"},
		{"no task", "beat_schedule:\n  a: {schedule: 5s}\n", `entry "a": task: beat: bad schedule file: is required`},
		{"no schedule", "beat_schedule:\n  a: {task: t}\n", `entry "a": schedule: beat: bad schedule file: is required`},
		{"bad every", "beat_schedule:\n  a: {task: t, schedule: soon}\n", `entry "a": schedule: schedule: invalid: interval "soon"`},
		{"bad cron", "beat_schedule:\n  b: {task: t, schedule: {crontab: {hour: 25}}}\n", `entry "b": schedule.crontab: crontab hour "25": Invalid end range: 25 > 23.`},
		{"cron field", "beat_schedule:\n  b: {task: t, schedule: {crontab: {hours: 2}}}\n", `entry "b": schedule.crontab.hours: beat: bad schedule file: unknown field`},
		{"two kinds", "beat_schedule:\n  c: {task: t, schedule: {every: 5s, crontab: {}}}\n", `entry "c": schedule: beat: bad schedule file: has both every and crontab`},
		{"solar", "beat_schedule:\n  d: {task: t, schedule: {solar: {event: moonrise, lat: 1, lon: 2}}}\n", `entry "d": schedule.solar: schedule: invalid: Invalid event specified: moonrise.`},
		{"priority", "beat_schedule:\n  e: {task: t, schedule: 5, options: {priority: 300}}\n", `entry "e": options.priority: beat: bad schedule file: "300" must be 0..255`},
		{"option", "beat_schedule:\n  e: {task: t, schedule: 5, options: {queu: x}}\n", `entry "e": options.queu: beat: bad schedule file: unknown option`},
		{"args", "beat_schedule:\n  f: {task: t, schedule: 5, args: {a: 1}}\n", `entry "f": args: beat: bad schedule file: must be a list`},
		{"clocked", "beat_schedule:\n  g: {task: t, schedule: {clocked: tomorrow}}\n", `entry "g": schedule.clocked: beat: bad schedule file: "tomorrow" is not a time`},
		{"yaml", "beat_schedule: [\n", "beat: bad schedule file: yaml:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile("beat.yaml", []byte(tc.yaml))
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FileError", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "beat.yaml") {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func FuzzParseFile(f *testing.F) {
	raw, _ := os.ReadFile("testdata/beat.yaml")
	f.Add(string(raw))
	f.Add("beat_schedule:\n  a: {task: t, schedule: {crontab: {minute: '*/5'}}}\n")
	f.Add("beat_schedule:\n  a: {task: t, schedule: {solar: {event: sunset, lat: 1, lon: 1}}, args: [1, {x: [2]}]}\n")
	f.Fuzz(func(t *testing.T, s string) {
		file, err := ParseFile("fuzz.yaml", []byte(s))
		if err != nil {
			return
		}
		for _, e := range file.Entries {
			if err := e.validate(); err != nil {
				t.Fatalf("parsed an invalid entry: %v", err)
			}
		}
	})
}
