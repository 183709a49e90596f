package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/celeriac/celeriac/beat"
	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/redisurl"
)

func init() {
	register("beat", "send periodic tasks from a schedule file or django-celery-beat; run several for high availability", runBeat)
}

const defaultBeatRedis = "redis://127.0.0.1:6379/0"

// beatFlags are celeriac beat's flags.
type beatFlags struct {
	conn     connFlags
	schedule string
	djangoDB string
	redisURL string
	lease    time.Duration
	name     string
	catchUp  string
	maxLoop  time.Duration
	sync     time.Duration
}

func (f *beatFlags) parse(e *env, args []string) error {
	fs := newFlagSet(e, "beat", "--schedule FILE [--django-db URL] [flags]")
	f.conn.register(fs, e)
	for _, n := range []string{"s", "schedule"} {
		fs.StringVar(&f.schedule, n, "", "schedule file (YAML, Celery's beat_schedule); see examples/beat.yaml")
	}
	fs.StringVar(&f.djangoDB, "django-db", e.envOr("CELERIAC_DJANGO_DB", ""), "PostgreSQL URL of a Django database with django-celery-beat's tables, read as another schedule source (env CELERIAC_DJANGO_DB)")
	fs.StringVar(&f.redisURL, "redis", e.envOr("CELERIAC_BEAT_REDIS", ""), "Redis for the run history and the leader lease (env CELERIAC_BEAT_REDIS; default: the result backend's Redis, else "+defaultBeatRedis+")")
	fs.DurationVar(&f.lease, "lease", 10*time.Second, "leader lease: a standby takes over within this long after the leader dies")
	fs.StringVar(&f.name, "name", "default", "schedule name: beats with the same name and Redis elect one leader")
	fs.StringVar(&f.catchUp, "catch-up", "run-once", "missed runs: run-once (run an overdue entry once) or skip (drop runs later than --lease)")
	fs.DurationVar(&f.maxLoop, "max-interval", 5*time.Minute, "longest sleep between schedule checks (Celery's beat_max_loop_interval)")
	fs.DurationVar(&f.sync, "sync-interval", 5*time.Second, "how often to check the django-celery-beat tables for changes")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if f.lease < 100*time.Millisecond {
		return fmt.Errorf("--lease %v is too short (minimum 100ms)", f.lease)
	}
	if f.catchUp != "run-once" && f.catchUp != "skip" {
		return fmt.Errorf("--catch-up %q: use run-once or skip", f.catchUp)
	}
	return nil
}

// redis picks the Redis for beat's state: --redis, else the result
// backend's when it is Redis, else the local default.
func (f *beatFlags) redis() string {
	if f.redisURL != "" {
		return f.redisURL
	}
	for _, s := range []string{"redis://", "rediss://", "unix://", "sentinel://"} {
		if strings.HasPrefix(f.conn.backendURL, s) {
			return f.conn.backendURL
		}
	}
	return defaultBeatRedis
}

func runBeat(ctx context.Context, e *env, args []string) error {
	var f beatFlags
	if err := f.parse(e, args); err != nil {
		return err
	}
	if f.schedule == "" && f.djangoDB == "" {
		return fmt.Errorf("beat needs --schedule FILE or --django-db URL")
	}
	var entries []beat.Entry
	if f.schedule != "" {
		file, err := beat.LoadFile(f.schedule)
		if err != nil {
			return err
		}
		entries = file.Entries
	}
	log, err := f.conn.logger(e.stderr)
	if err != nil {
		return err
	}
	b, _, err := f.conn.open(ctx, log, "celeriac beat")
	if err != nil {
		return err
	}
	defer b.Close()
	rdb, err := redisurl.NewClient(f.redis(), redisurl.Options{ClientName: "celeriac-beat"})
	if err != nil {
		return fmt.Errorf("--redis %s: %w", broker.Redact(f.redis()), err)
	}
	defer rdb.Close()
	p, err := broker.NewProducer(broker.ProducerConfig{Broker: b, DefaultQueue: f.conn.defaultQ, Serializer: f.conn.serializer, Logger: log})
	if err != nil {
		return err
	}
	cfg := beat.Config{
		Producer: p, Redis: rdb, Name: f.name, Entries: entries, LeaseTTL: f.lease,
		MaxLoopInterval: f.maxLoop, SyncInterval: f.sync, Logger: log,
	}
	if f.catchUp == "skip" {
		cfg.CatchUp = beat.CatchUpSkip
	}
	if f.djangoDB != "" {
		src, closeSrc, err := openDjangoSource(ctx, f.djangoDB, log)
		if err != nil {
			return fmt.Errorf("--django-db: %w", err)
		}
		defer closeSrc()
		cfg.Source = src
	}
	bt, err := beat.New(cfg)
	if err != nil {
		return err
	}
	if err := bt.Start(ctx); err != nil {
		return err
	}
	log.Info("beat started", "entries", len(entries), "redis", broker.Redact(f.redis()), "lease", f.lease)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = bt.Shutdown(sctx)
	log.Info("beat stopped")
	return err
}
