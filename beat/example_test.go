package beat_test

import (
	"fmt"

	"github.com/celeriac/celeriac/beat"
)

func ExampleParseFile() {
	_, err := beat.ParseFile("beat.yaml", []byte(`
beat_schedule:
  nightly-report:
    task: reports.nightly
    schedule: {crontab: {minute: "0", hour: "25"}}
`))
	fmt.Println(err)
	f, _ := beat.ParseFile("beat.yaml", []byte(`
timezone: Europe/London
beat_schedule:
  add: {task: tasks.add, schedule: 30s, args: [16, 16], options: {queue: default, expires: 60}}
`))
	fmt.Println(f.Entries[0].Name, f.Entries[0].Task, f.Entries[0].Schedule, f.Entries[0].Options.Expires)
	// Output:
	// beat.yaml:5: entry "nightly-report": schedule.crontab: crontab hour "25": Invalid end range: 25 > 23.
	// add tasks.add <freq: 30s> 1m0s
}
