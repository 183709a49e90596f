// Package beat is a highly available periodic task scheduler: Celery's
// beat, able to run as several replicas of which exactly one fires each
// due entry.
//
//	b, err := beat.New(beat.Config{
//		Producer: producer,          // a *broker.Producer: ordinary Celery task messages
//		Redis:    rdb,               // run history and the leader lease
//		Entries:  file.Entries,      // e.g. from beat.LoadFile("beat.yaml")
//	})
//	if err != nil {
//		return err
//	}
//	if err := b.Start(ctx); err != nil {
//		return err
//	}
//	defer b.Shutdown(context.Background())
//
// # High availability
//
// Every replica asks for the leader lease (package lock, with a fencing
// token); the holder renews it every third of Config.LeaseTTL (default
// 10 s) and dispatches, the others wait. If the leader dies its lease
// expires and a standby takes over within LeaseTTL; a leader that shuts
// down releases it at once.
//
// The run history (each entry's last run, Unix µs, and run count) lives
// in Redis under Config.Prefix. A dispatch first advances the entry's last
// run with a Lua script that, in one step, refuses the write if a larger
// fencing token has been seen (a newer leader exists) and if the stored
// last run is not the one this beat read (someone else already ran it);
// only then is the message sent. A leader paused past its lease
// (GC, SIGSTOP, a partition) therefore cannot fire when it wakes, and no
// run is sent twice. The price, as in Celery, is that a crash between the
// write and the send loses that one run.
//
// # Catch-up
//
// Runs missed while no beat was leading (or while delayed by a failover)
// follow Config.CatchUp. The default, CatchUpRunOnce, is Celery's: an
// entry that is overdue runs once, now — not once per missed period — and
// then follows its schedule from now. CatchUpSkip drops runs that are
// more than LeaseTTL late, so a failover still runs the delayed tick but
// an outage's backlog is not replayed. New entries count their first
// appearance as their last run (an every-30s entry first runs 30 s after
// it appears; a crontab waits for its next match); clocked entries run at
// their time, or at once if it has passed.
//
// Entries come from Config.Entries (see LoadFile for Celery's
// beat_schedule as YAML), from a Source polled for changes (package
// beat/djangobeat reads django-celery-beat's tables), and from Add and
// Remove at run time.
package beat
