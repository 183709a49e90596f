// Command worker is an example Go worker for a Celery deployment: it runs
// the tasks a Django project declares in tasks.py (tasks.add, tasks.mul,
// tasks.order_total, tasks.fetch_status, tasks.credit) while Python keeps
// sending them as before. See README.md.
//
//	CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// \
//	CELERY_RESULT_BACKEND=redis://127.0.0.1:6379/0 \
//	go run ./examples/worker -Q celery
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/lock"
	"github.com/celeriac/celeriac/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "worker:", err)
		}
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// run starts the worker and serves until ctx ends, then shuts down
// warmly: running tasks finish (up to --shutdown-timeout).
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokerURL := fs.String("broker", envOr("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"), "broker URL (env CELERY_BROKER_URL)")
	backendURL := fs.String("result-backend", envOr("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/0"), "result backend URL (env CELERY_RESULT_BACKEND)")
	queues := fs.String("Q", "celery", "comma-separated queues to consume")
	defaultQueue := fs.String("default-queue", "celery", "queue of the tasks the worker sends itself (chain links, callbacks): the Celery side's task_default_queue")
	concurrency := fs.Int("c", 4, "tasks run at once")
	hostname := fs.String("n", "example@%h", "node name")
	ledgerPrefix := fs.String("ledger-prefix", "example:ledger:", "Redis key prefix of tasks.credit's balances")
	shutdownTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "how long running tasks may finish on shutdown")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	host, err := worker.ExpandHostname(*hostname)
	if err != nil {
		return err
	}
	opts := broker.Options{Logger: log, Name: host}
	b, err := broker.Open(ctx, *brokerURL, opts)
	if err != nil {
		return err
	}
	defer b.Close()
	rb, err := broker.OpenBackend(ctx, *backendURL, broker.BackendOptions{Options: opts, Broker: b})
	if err != nil {
		return err
	}
	defer rb.Close()

	cfg := worker.Config{Broker: b, Backend: rb, Concurrency: *concurrency, Hostname: host,
		DefaultQueue: *defaultQueue, Logger: log}
	for _, q := range strings.Split(*queues, ",") {
		if q = strings.TrimSpace(q); q != "" {
			cfg.Queues = append(cfg.Queues, broker.TaskQueue(q))
		}
	}
	deps := Deps{}
	// The guard and the ledger share the result backend's Redis when it
	// is Redis; with another backend tasks.credit is left out and tasks
	// run unguarded.
	if c, ok := rb.(interface {
		Client() goredis.UniversalClient
	}); ok {
		if cfg.Locker, err = lock.New(lock.Config{Clients: []goredis.UniversalClient{c.Client()}, Logger: log}); err != nil {
			return err
		}
		defer cfg.Locker.Close()
		deps.Ledger = NewLedger(c.Client(), *ledgerPrefix)
	}
	w, err := worker.New(cfg)
	if err != nil {
		return err
	}
	if err := worker.RegisterBuiltins(w); err != nil {
		return err
	}
	if err := Register(w, deps); err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-w.ShutdownRequested():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *shutdownTimeout)
	defer cancel()
	return w.Shutdown(sctx)
}
