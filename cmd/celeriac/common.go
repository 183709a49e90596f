package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/celeriac/celeriac/broker"
)

const defaultBrokerURL = "amqp://guest:guest@127.0.0.1:5672//"

// connFlags are the connection settings shared by worker, send, beat and
// inspect, with Celery's names and environment variables.
type connFlags struct {
	brokerURL   string
	backendURL  string
	resultTTL   time.Duration
	serializer  string
	logLevel    string
	logFormat   string
	defaultQ    string
	connTimeout time.Duration
	hooks       broker.Hooks // connection event callbacks (metrics)
}

func (c *connFlags) register(fs *flag.FlagSet, e *env) {
	c.brokerURL = e.envOr("CELERY_BROKER_URL", defaultBrokerURL)
	c.backendURL = e.envOr("CELERY_RESULT_BACKEND", "")
	for _, name := range []string{"b", "broker"} {
		fs.StringVar(&c.brokerURL, name, c.brokerURL, "broker URL; several separated by ';' for failover (env CELERY_BROKER_URL)")
	}
	fs.StringVar(&c.backendURL, "result-backend", c.backendURL, "result backend URL, e.g. redis://127.0.0.1:6379/0 (env CELERY_RESULT_BACKEND; none by default)")
	fs.DurationVar(&c.resultTTL, "result-expires", 24*time.Hour, "how long stored results are kept (Celery's result_expires)")
	fs.StringVar(&c.serializer, "serializer", "json", "serializer for messages this process sends: json or msgpack")
	fs.StringVar(&c.defaultQ, "default-queue", "celery", "queue for tasks sent without one (Celery's task_default_queue)")
	for _, name := range []string{"l", "loglevel"} {
		fs.StringVar(&c.logLevel, name, "info", "log level: debug, info, warning, error or critical")
	}
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&c.connTimeout, "connect-timeout", 10*time.Second, "timeout for each connection attempt")
}

// logger builds the process logger from -l and --log-format.
func (c *connFlags) logger(w io.Writer) (*slog.Logger, error) {
	return newLogger(w, c.logLevel, c.logFormat)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warning", "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	case "critical", "fatal":
		lvl = slog.LevelError + 4
	default:
		return nil, fmt.Errorf("--loglevel %q: use debug, info, warning, error or critical", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// open connects to the broker and, if configured, the result backend.
func (c *connFlags) open(ctx context.Context, log *slog.Logger, name string) (broker.Broker, broker.ResultBackend, error) {
	if c.serializer != broker.SerializerJSON && c.serializer != broker.SerializerMsgpack {
		return nil, nil, fmt.Errorf("--serializer %q: use json or msgpack", c.serializer)
	}
	opts := broker.Options{Logger: log, Name: name, ConnectTimeout: c.connTimeout, Hooks: c.hooks}
	b, err := broker.Open(ctx, c.brokerURL, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("broker %s: %w", redactList(c.brokerURL), err)
	}
	if c.backendURL == "" {
		return b, nil, nil
	}
	rb, err := broker.OpenBackend(ctx, c.backendURL, broker.BackendOptions{
		Options: opts, Expires: c.resultTTL, Serializer: c.serializer, Broker: b,
	})
	if err != nil {
		b.Close()
		return nil, nil, fmt.Errorf("result backend %s: %w", broker.Redact(c.backendURL), err)
	}
	return b, rb, nil
}

func redactList(urls string) string {
	parts := broker.SplitURLs(urls)
	for i, p := range parts {
		parts[i] = broker.Redact(p)
	}
	return strings.Join(parts, ";")
}

// splitList splits a comma-separated flag value.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
