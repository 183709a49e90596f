package schedule_test

import (
	"fmt"
	"time"

	"github.com/celeriac/celeriac/beat/schedule"
)

func ExampleParseCrontab() {
	// 03:00 on weekdays, London time.
	cr, err := schedule.ParseCrontab("0", "3", "mon-fri", "*", "*")
	if err != nil {
		panic(err)
	}
	cr.Loc, _ = time.LoadLocation("Europe/London")
	last := time.Date(2026, 7, 3, 2, 0, 0, 0, time.UTC) // Friday 03:00 BST
	fmt.Println(cr.Next(last).In(cr.Loc).Format("Mon 2006-01-02 15:04 MST"))

	_, err = schedule.ParseCrontab("*/0", "*", "*", "*", "*")
	fmt.Println(err)
	// Output:
	// Mon 2026-07-06 03:00 BST
	// crontab minute "*/0": slice step cannot be zero
}
