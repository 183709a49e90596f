// Package schedule computes when periodic tasks run, with Celery's
// schedule types and semantics: crontab, every (an interval, optionally
// relative), clocked (one-off) and solar events.
//
//	cr, err := schedule.ParseCrontab("0", "3", "mon-fri", "*", "*")
//	if err != nil {
//		return err // Celery's own message for the bad field
//	}
//	cr.Loc = london // match the fields on London's wall clock
//	next := cr.Next(lastRun) // the first due time after lastRun
//
// Every Schedule answers one question, Next(last): the earliest time after
// a run at last when the entry is due again. A scheduler fires an entry
// when now ≥ Next(last) and then records now as its last run, so a late
// scheduler fires a missed entry once, not once per missed period.
//
// # Time zones and DST
//
// Crontabs match wall-clock fields in their zone. When clocks go forward,
// a wall time that does not exist that day (01:30 in Europe/London on the
// last Sunday of March) runs at the first instant after the gap (02:00
// BST, when the gap ends) instead of being skipped for the day; with an
// hour field of "*" the nonexistent hour is skipped, as no real hour is. When clocks go back, a wall
// time that happens twice runs once (the first time) unless the crontab's
// hour field is "*", where every real hour is wanted and both run.
//
// Results are checked against Debian's Celery 5.2.6 with golden data in
// testdata/ (regenerate with testdata/gen_golden.py).
package schedule
