package main

import (
	"context"
	"fmt"
	"os"

	"github.com/celeriac/celeriac/beat"

	"github.com/celeriac/celeriac/devmode"
	"github.com/celeriac/celeriac/worker"
)

func init() {
	register("dev", "development mode: embedded broker, result backend, worker and beat in one process, no servers", runDev)
}

// devFlags are celeriac dev's flags.
type devFlags struct {
	listen      string
	queues      string
	concurrency int
	taskEvents  bool
	httpAddr    string
	schedule    string
	logLevel    string
	logFormat   string
}

func (f *devFlags) parse(e *env, args []string) error {
	fs := newFlagSet(e, "dev", "[flags]")
	fs.StringVar(&f.listen, "listen", devmode.DefaultAddr, "address of the embedded Redis-protocol server (broker, results, locks)")
	for _, n := range []string{"Q", "queues"} {
		fs.StringVar(&f.queues, n, "celery", "comma-separated queues to consume")
	}
	for _, n := range []string{"c", "concurrency"} {
		fs.IntVar(&f.concurrency, n, worker.DefaultConcurrency(), "tasks run at once (goroutines)")
	}
	for _, n := range []string{"E", "task-events"} {
		fs.BoolVar(&f.taskEvents, n, false, "send task events")
	}
	fs.StringVar(&f.httpAddr, "http", "", "serve /metrics, /healthz and /readyz on this address (off when empty)")
	fs.StringVar(&f.schedule, "schedule", "", "beat schedule file (default: "+devDefaultSchedule+" when present; \"none\" runs no beat)")
	for _, n := range []string{"l", "loglevel"} {
		fs.StringVar(&f.logLevel, n, "info", "log level: debug, info, warning, error or critical")
	}
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "celeriac dev: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if f.concurrency < 1 {
		return fmt.Errorf("--concurrency must be at least 1, got %d", f.concurrency)
	}
	return nil
}

func runDev(ctx context.Context, e *env, args []string) error {
	var f devFlags
	if err := f.parse(e, args); err != nil {
		return err
	}
	log, err := newLogger(e.stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	schedule, err := devSchedule(f.schedule)
	if err != nil {
		return err
	}
	s, err := devmode.New(devmode.Config{
		Addr: f.listen, Queues: splitList(f.queues), Concurrency: f.concurrency,
		TaskEvents: f.taskEvents, Logger: log, Schedule: schedule,
		Register: registerExtraTasks,
	})
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	stopHTTP, err := serveHTTP(f.httpAddr, s.Worker().HTTPHandler(), log)
	if err != nil {
		_ = s.Shutdown(context.Background())
		return err
	}
	defer stopHTTP()
	fmt.Fprintf(e.stdout, `celeriac dev: development mode, not for production — everything is in memory and lost on exit.
Point Celery (a Django project's settings, or the environment) at:

  export CELERY_BROKER_URL=%s
  export CELERY_RESULT_BACKEND=%s

Built-in tasks: celeriac.add, celeriac.echo, celeriac.noop, celeriac.sleep, celeriac.fail. Ctrl-C stops.
`, s.BrokerURL(), s.BackendURL())
	select {
	case <-ctx.Done():
	case <-s.Worker().ShutdownRequested():
	}
	return s.Shutdown(context.Background())
}

// devDefaultSchedule is the schedule dev mode runs when started from a
// checkout of this repository.
const devDefaultSchedule = "examples/beat.yaml"

// devSchedule loads the beat entries dev mode runs: --schedule, else the
// example schedule when present, else none.
func devSchedule(path string) ([]beat.Entry, error) {
	switch path {
	case "none":
		return nil, nil
	case "":
		if _, err := os.Stat(devDefaultSchedule); err != nil {
			return nil, nil
		}
		path = devDefaultSchedule
	}
	f, err := beat.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--schedule: %w", err)
	}
	return f.Entries, nil
}
