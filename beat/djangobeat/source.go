package djangobeat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/celeriac/celeriac/beat"
	"github.com/celeriac/celeriac/beat/schedule"
	"github.com/celeriac/celeriac/broker"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config configures a Source.
type Config struct {
	// URL is the Django database (postgres://...). Required unless Pool is set.
	URL string
	// Pool is an existing connection pool to use instead of URL.
	Pool *pgxpool.Pool
	// Logger; nil discards.
	Logger *slog.Logger
}

// Source is django-celery-beat's schedule as a beat.Source and beat.Recorder.
type Source struct {
	pool  *pgxpool.Pool
	owned bool
	log   *slog.Logger
}

var (
	_ beat.Source   = (*Source)(nil)
	_ beat.Recorder = (*Source)(nil)
)

// New connects (if given a URL) and checks that the tables exist.
func New(ctx context.Context, cfg Config) (*Source, error) {
	s := &Source{pool: cfg.Pool, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.pool == nil {
		if cfg.URL == "" {
			return nil, errors.New("djangobeat: Config.URL or Config.Pool is required")
		}
		pool, err := pgxpool.New(ctx, cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("djangobeat: Config.URL: %w", err)
		}
		s.pool, s.owned = pool, true
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM django_celery_beat_periodictask`).Scan(&n); err != nil {
		s.Close()
		return nil, fmt.Errorf("djangobeat: django-celery-beat's tables (run its migrations?): %w", err)
	}
	return s, nil
}

// Close closes the pool New opened.
func (s *Source) Close() {
	if s.owned {
		s.pool.Close()
	}
}

// Version is periodictasks.last_update, which Django bumps on every change.
func (s *Source) Version(ctx context.Context) (string, error) {
	var t time.Time
	err := s.pool.QueryRow(ctx, `SELECT last_update FROM django_celery_beat_periodictasks WHERE ident = 1`).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("djangobeat: read last_update: %w", err)
	}
	return t.UTC().Format(time.RFC3339Nano), nil
}

const entriesSQL = `
SELECT t.name, t.task, t.args, t.kwargs, t.queue, t.exchange, t.routing_key, t.headers,
       t.priority, t.expires, t.expire_seconds, t.one_off, t.start_time, t.last_run_at,
       i.every, i.period,
       c.minute, c.hour, c.day_of_week, c.day_of_month, c.month_of_year, c.timezone,
       s.event, s.latitude::float8, s.longitude::float8,
       k.clocked_time
FROM django_celery_beat_periodictask t
LEFT JOIN django_celery_beat_intervalschedule i ON i.id = t.interval_id
LEFT JOIN django_celery_beat_crontabschedule c ON c.id = t.crontab_id
LEFT JOIN django_celery_beat_solarschedule s ON s.id = t.solar_id
LEFT JOIN django_celery_beat_clockedschedule k ON k.id = t.clocked_id
WHERE t.enabled
ORDER BY t.name`

type row struct {
	name, task                          string
	args, kwargs, headers               *string
	queue, exchange, routingKey         *string
	priority, expireSeconds             *int64
	expires, startTime, lastRunAt       *time.Time
	oneOff                              bool
	every                               *int64
	period                              *string
	minute, hour, dow, dom, moy, cronTZ *string
	event                               *string
	lat, lon                            *float64
	clocked                             *time.Time
}

// Entries reads the enabled periodic tasks.
func (s *Source) Entries(ctx context.Context) ([]beat.Entry, error) {
	rows, err := s.pool.Query(ctx, entriesSQL)
	if err != nil {
		return nil, fmt.Errorf("djangobeat: read periodic tasks: %w", err)
	}
	defer rows.Close()
	var out []beat.Entry
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.name, &r.task, &r.args, &r.kwargs, &r.queue, &r.exchange, &r.routingKey, &r.headers,
			&r.priority, &r.expires, &r.expireSeconds, &r.oneOff, &r.startTime, &r.lastRunAt,
			&r.every, &r.period, &r.minute, &r.hour, &r.dow, &r.dom, &r.moy, &r.cronTZ,
			&r.event, &r.lat, &r.lon, &r.clocked); err != nil {
			return nil, fmt.Errorf("djangobeat: read periodic tasks: %w", err)
		}
		e, err := r.entry()
		if err != nil {
			s.log.Warn("djangobeat: skipping periodic task", "task", r.name, "err", err)
			continue
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("djangobeat: read periodic tasks: %w", err)
	}
	return out, nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (r *row) entry() (beat.Entry, error) {
	e := beat.Entry{Name: r.name, Task: r.task, OneOff: r.oneOff}
	args, err := decodeJSON(str(r.args), "[]")
	if err != nil {
		return e, fmt.Errorf("args: %w", err)
	}
	if e.Args, _ = args.([]any); e.Args == nil && args != nil {
		return e, errors.New("args is not a JSON list")
	}
	kw, err := decodeJSON(str(r.kwargs), "{}")
	if err != nil {
		return e, fmt.Errorf("kwargs: %w", err)
	}
	if e.Kwargs, _ = kw.(map[string]any); e.Kwargs == nil && kw != nil {
		return e, errors.New("kwargs is not a JSON object")
	}
	h, err := decodeJSON(str(r.headers), "{}")
	if err != nil {
		return e, fmt.Errorf("headers: %w", err)
	}
	e.Options.Headers, _ = h.(map[string]any)
	e.Options.Queue, e.Options.Exchange, e.Options.RoutingKey = str(r.queue), str(r.exchange), str(r.routingKey)
	if r.priority != nil {
		if *r.priority < 0 || *r.priority > 255 {
			return e, fmt.Errorf("priority %d is not 0..255", *r.priority)
		}
		p := uint8(*r.priority)
		e.Options.Priority = &p
	}
	if r.expires != nil {
		e.Options.ExpiresAt = *r.expires
	} else if r.expireSeconds != nil && *r.expireSeconds > 0 {
		e.Options.Expires = time.Duration(*r.expireSeconds) * time.Second
	}
	if r.startTime != nil {
		e.StartTime = *r.startTime
	}
	if r.lastRunAt != nil {
		e.LastRunAt = *r.lastRunAt
	}
	e.Schedule, err = r.schedule()
	return e, err
}

func (r *row) schedule() (schedule.Schedule, error) {
	switch {
	case r.every != nil:
		unit := map[string]time.Duration{"days": 24 * time.Hour, "hours": time.Hour, "minutes": time.Minute,
			"seconds": time.Second, "microseconds": time.Microsecond}[str(r.period)]
		if unit == 0 {
			return nil, fmt.Errorf("interval period %q", str(r.period))
		}
		return schedule.NewEvery(time.Duration(*r.every)*unit, false)
	case r.minute != nil:
		c, err := schedule.ParseCrontab(str(r.minute), str(r.hour), str(r.dow), str(r.dom), str(r.moy))
		if err != nil {
			return nil, err
		}
		if tz := str(r.cronTZ); tz != "" {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				return nil, fmt.Errorf("crontab timezone %q: %w", tz, err)
			}
			c.Loc = loc
		}
		return c, nil
	case r.event != nil:
		if r.lat == nil || r.lon == nil {
			return nil, errors.New("solar schedule without coordinates")
		}
		return schedule.NewSolar(*r.event, *r.lat, *r.lon)
	case r.clocked != nil:
		return &schedule.Clocked{At: *r.clocked}, nil
	}
	return nil, errors.New("no schedule (interval, crontab, solar or clocked)")
}

func decodeJSON(s, empty string) (any, error) {
	if s == "" {
		s = empty
	}
	return broker.UnmarshalJSON([]byte(s))
}

// Record writes a run back as DatabaseScheduler does.
func (s *Source) Record(ctx context.Context, name string, at time.Time, oneOff bool) error {
	q := `UPDATE django_celery_beat_periodictask SET last_run_at = $2, total_run_count = total_run_count + 1 WHERE name = $1`
	if oneOff {
		// Where DatabaseScheduler leaves a one-off task after its run:
		// disabled, count reset, and (PeriodicTask.save clears it for
		// disabled tasks) no last_run_at.
		q = `UPDATE django_celery_beat_periodictask SET last_run_at = NULL, total_run_count = 0, enabled = false WHERE name = $1 AND $2::timestamptz IS NOT NULL`
	}
	if _, err := s.pool.Exec(ctx, q, name, at.UTC()); err != nil {
		return fmt.Errorf("djangobeat: record run of %q: %w", name, err)
	}
	if oneOff {
		if _, err := s.pool.Exec(ctx, `INSERT INTO django_celery_beat_periodictasks (ident, last_update) VALUES (1, now())
			ON CONFLICT (ident) DO UPDATE SET last_update = now()`); err != nil {
			return fmt.Errorf("djangobeat: mark change: %w", err)
		}
	}
	return nil
}
