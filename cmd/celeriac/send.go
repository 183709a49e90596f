package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/celeriac/celeriac/broker"
	"golang.org/x/sync/errgroup"
)

func init() {
	register("send", "send a task by name (like send_task) and optionally wait for its result", runSend)
}

type sendFlags struct {
	conn       connFlags
	kwargs     string
	queue      string
	countdown  float64
	expires    float64
	priority   int
	count      int
	wait       bool
	timeout    time.Duration
	taskID     string
	publishers int
}

func runSend(ctx context.Context, e *env, args []string) error {
	var f sendFlags
	fs := newFlagSet(e, "send", "NAME [ARG...] [flags]   (each ARG is a JSON value)")
	f.conn.register(fs, e)
	fs.StringVar(&f.kwargs, "kwargs", "", "keyword arguments as a JSON object")
	fs.StringVar(&f.queue, "queue", "", "queue to send to (default: --default-queue)")
	fs.Float64Var(&f.countdown, "countdown", 0, "run no earlier than this many seconds from now")
	fs.Float64Var(&f.expires, "expires", 0, "expire the task this many seconds from now (0: never)")
	fs.IntVar(&f.priority, "priority", -1, "message priority (0-255; -1: unset)")
	fs.IntVar(&f.count, "count", 1, "send this many copies (each with its own id), showing progress and the publish rate")
	fs.BoolVar(&f.wait, "wait", false, "wait for the result; print it as JSON, exit non-zero if the task failed")
	fs.DurationVar(&f.timeout, "timeout", 60*time.Second, "with --wait: give up after this long")
	fs.StringVar(&f.taskID, "task-id", "", "task id (default: a new UUID; only with --count 1)")
	fs.IntVar(&f.publishers, "publishers", 64, "concurrent publishers for --count")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return errUsage
	}
	name, rawArgs := pos[0], pos[1:]
	taskArgs, kwargs, err := parseTaskArgs(rawArgs, f.kwargs)
	if err != nil {
		return err
	}
	if f.count < 1 {
		return fmt.Errorf("--count must be at least 1, got %d", f.count)
	}
	if f.taskID != "" && f.count > 1 {
		return errors.New("--task-id cannot be used with --count above 1")
	}
	if f.priority > 255 {
		return fmt.Errorf("--priority must be 0..255, got %d", f.priority)
	}
	if f.publishers < 1 {
		f.publishers = 1
	}
	if f.wait && f.conn.backendURL == "" {
		return errors.New("--wait needs a result backend: set --result-backend or CELERY_RESULT_BACKEND")
	}
	log, err := f.conn.logger(e.stderr)
	if err != nil {
		return err
	}
	b, rb, err := f.conn.open(ctx, log, "celeriac send")
	if err != nil {
		return err
	}
	defer b.Close()
	if rb != nil {
		defer rb.Close()
	}
	p, err := broker.NewProducer(broker.ProducerConfig{Broker: b, Backend: rb, DefaultQueue: f.conn.defaultQ,
		Serializer: f.conn.serializer, Logger: log})
	if err != nil {
		return err
	}
	opts := f.sendOptions()
	if f.count == 1 {
		return sendOne(ctx, e, p, &f, name, taskArgs, kwargs, opts)
	}
	return sendMany(ctx, e, p, &f, name, taskArgs, kwargs, opts)
}

func (f *sendFlags) sendOptions() []broker.SendOption {
	var opts []broker.SendOption
	if f.queue != "" {
		opts = append(opts, broker.WithQueue(f.queue))
	}
	if f.countdown > 0 {
		opts = append(opts, broker.WithCountdown(time.Duration(f.countdown*float64(time.Second))))
	}
	if f.expires > 0 {
		opts = append(opts, broker.WithExpires(time.Duration(f.expires*float64(time.Second))))
	}
	if f.priority >= 0 {
		opts = append(opts, broker.WithPriority(uint8(f.priority)))
	}
	if f.taskID != "" {
		opts = append(opts, broker.WithTaskID(f.taskID))
	}
	return opts
}

// parseTaskArgs reads each ARG and --kwargs as JSON.
func parseTaskArgs(raw []string, kw string) ([]any, map[string]any, error) {
	args := make([]any, 0, len(raw))
	for i, a := range raw {
		v, err := broker.UnmarshalJSON([]byte(a))
		if err != nil {
			return nil, nil, fmt.Errorf("argument %d %q is not a JSON value (quote strings: '\"text\"'): %v", i+1, a, err)
		}
		args = append(args, v)
	}
	kwargs := map[string]any{}
	if kw != "" {
		v, err := broker.UnmarshalJSON([]byte(kw))
		m, ok := v.(map[string]any)
		if err != nil || !ok {
			return nil, nil, fmt.Errorf("--kwargs %q must be a JSON object", kw)
		}
		kwargs = m
	}
	return args, kwargs, nil
}

func sendOne(ctx context.Context, e *env, p *broker.Producer, f *sendFlags, name string, args []any, kwargs map[string]any, opts []broker.SendOption) error {
	r, err := p.Send(ctx, name, args, kwargs, opts...)
	if err != nil {
		return err
	}
	if !f.wait {
		fmt.Fprintln(e.stdout, r.ID)
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, f.timeout+time.Duration(f.countdown*float64(time.Second)))
	defer cancel()
	v, err := r.Get(wctx)
	if err != nil {
		return err
	}
	out, err := broker.MarshalJSON(v)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, string(out))
	return nil
}

// sendMany publishes f.count copies with a progress line on stderr, then
// optionally waits for all results.
func sendMany(ctx context.Context, e *env, p *broker.Producer, f *sendFlags, name string, args []any, kwargs map[string]any, opts []broker.SendOption) error {
	var sent atomic.Int64
	ids := make([]string, f.count)
	start := time.Now()
	stop := make(chan struct{})
	var progressWG sync.WaitGroup
	progressWG.Add(1)
	go func() {
		defer progressWG.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				progress(e.stderr, "sent", int(sent.Load()), f.count, time.Since(start))
			case <-stop:
				return
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range f.publishers {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= f.count {
					return nil
				}
				r, err := p.Send(gctx, name, args, kwargs, opts...)
				if err != nil {
					return err
				}
				ids[i] = r.ID
				sent.Add(1)
			}
		})
	}
	err := g.Wait()
	close(stop)
	progressWG.Wait()
	elapsed := time.Since(start)
	progress(e.stderr, "sent", int(sent.Load()), f.count, elapsed)
	fmt.Fprintln(e.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "published %d tasks in %.3fs (%.0f tasks/s)\n", f.count, elapsed.Seconds(), float64(f.count)/elapsed.Seconds())
	if !f.wait {
		return nil
	}
	return waitMany(ctx, e, p, f, ids, start)
}

func waitMany(ctx context.Context, e *env, p *broker.Producer, f *sendFlags, ids []string, start time.Time) error {
	wctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	var done, failed atomic.Int64
	var firstErr error
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(wctx)
	g.SetLimit(256)
	for _, id := range ids {
		g.Go(func() error {
			_, err := p.Result(id).Get(gctx)
			done.Add(1)
			var te *broker.TaskError
			if errors.As(err, &te) {
				failed.Add(1)
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return nil
			}
			return err
		})
	}
	err := g.Wait()
	elapsed := time.Since(start)
	fmt.Fprintf(e.stdout, "finished %d tasks (%d failed) %.3fs after the first send (%.0f tasks/s end to end)\n",
		done.Load(), failed.Load(), elapsed.Seconds(), float64(done.Load())/elapsed.Seconds())
	if err != nil {
		return err
	}
	if firstErr != nil {
		return fmt.Errorf("%d of %d tasks failed; first: %w", failed.Load(), len(ids), firstErr)
	}
	return nil
}

func progress(w io.Writer, verb string, n, total int, elapsed time.Duration) {
	const width = 30
	filled := width * n / max(total, 1)
	rate := float64(n) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "\r[%s%s] %d/%d %s  %.0f/s", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), n, total, verb, rate)
}
