// Package djangobeat reads django-celery-beat's schedule from its
// PostgreSQL tables, as a beat.Source, and writes run history back the way
// its DatabaseScheduler does.
//
//	src, err := djangobeat.New(ctx, djangobeat.Config{URL: "postgres://app@db/app"})
//	if err != nil {
//		return err
//	}
//	defer src.Close()
//	b, err := beat.New(beat.Config{Producer: p, Redis: rdb, Source: src})
//
// Enabled rows of django_celery_beat_periodictask become entries, with
// their interval, crontab (in the crontab's own time zone), solar or
// clocked schedule; args, kwargs and headers (JSON text), queue,
// exchange, routing_key, priority, expires or expire_seconds (the
// message's expiry, as django-celery-beat passes it), start_time and
// one_off. The row in django_celery_beat_periodictasks (last_update,
// bumped by Django's signals on every change made through the ORM or the
// admin) is the version beat polls, so edits apply without a restart.
//
// After each run the source sets last_run_at and increments
// total_run_count; a one-off task is then disabled (enabled = false,
// total_run_count 0, last_run_at NULL), which is where DatabaseScheduler
// leaves it. Rows whose args, kwargs or headers are not valid JSON are skipped
// with a warning.
package djangobeat
