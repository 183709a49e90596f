package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/celeriac/celeriac/worker"
)

// The example's tasks. Each shows one way of writing a Go task that a
// Python caller sends with an ordinary Celery call:
//
//	add.delay(2, 3)                          -> tasks.add, plain parameters
//	(add.s(2, 3) | mul.s(10)).delay()        -> a chain through tasks.add and tasks.mul
//	order_total.delay({"id": "A1", "lines": [...]})  -> a struct argument
//	fetch_status.delay("https://example.org/")       -> retried with backoff
//	credit.delay("alice", 10)                -> a write fenced by the guard's token

// Deps are what the tasks reach outside the worker. main builds them from
// flags; the test builds them against a local HTTP server and Redis.
type Deps struct {
	// HTTP fetches for tasks.fetch_status.
	HTTP *http.Client
	// Ledger stores tasks.credit's balances; nil leaves tasks.credit out.
	Ledger *Ledger
	// Backoff is tasks.fetch_status's first retry delay; it doubles on
	// each retry. Default 1 s.
	Backoff time.Duration
}

// Register adds the example's tasks to w under the names the Django
// project's tasks.py declares.
func Register(w *worker.Worker, d Deps) error {
	if d.HTTP == nil {
		d.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if d.Backoff == 0 {
		d.Backoff = time.Second
	}
	regs := []struct {
		name string
		h    worker.Handler
		opts []worker.TaskOption
	}{
		// Plain parameters bind positionally; ArgNames lets
		// add.delay(x=2, y=3) bind by keyword as well. A sum is
		// idempotent, so it skips the exactly-once guard's round trips.
		{"tasks.add", worker.Func(add, worker.ArgNames("x", "y")), []worker.TaskOption{worker.Unguarded()}},
		{"tasks.mul", worker.Func(mul, worker.ArgNames("x", "y")), []worker.TaskOption{worker.Unguarded()}},
		{"tasks.order_total", worker.Func(orderTotal), nil},
		{"tasks.fetch_status", worker.Func(fetcher(d.HTTP)), []worker.TaskOption{
			// Celery's autoretry_for=(TemporaryError,), retry_backoff=1,
			// retry_backoff_max=60, max_retries=5: only temporary
			// failures come back, and each waits up to twice as long.
			worker.AutoRetry(worker.AutoRetryPolicy{
				For:        worker.RetryOn(ErrTemporary),
				MaxRetries: 5,
				Backoff:    d.Backoff,
				BackoffMax: time.Minute,
			}),
		}},
	}
	if d.Ledger != nil {
		regs = append(regs, struct {
			name string
			h    worker.Handler
			opts []worker.TaskOption
		}{"tasks.credit", worker.Func(d.Ledger.credit, worker.ArgNames("account", "amount")), nil})
	}
	for _, r := range regs {
		if err := w.Register(r.name, r.h, r.opts...); err != nil {
			return err
		}
	}
	return nil
}

func add(x, y int) int { return x + y }

func mul(x, y int) int { return x * y }

// Order is tasks.order_total's argument: a dict from Python
// ({"id": "A1", "lines": [{"sku": "tea", "qty": 2, "unit_cents": 350}]})
// or the same names as keyword arguments.
type Order struct {
	ID    string `json:"id" celery:"required"`
	Lines []Line `json:"lines"`
	// DiscountPct is optional; absent means 0.
	DiscountPct int `json:"discount_pct"`
}

// Line is one line of an Order.
type Line struct {
	SKU       string `json:"sku"`
	Qty       int    `json:"qty"`
	UnitCents int    `json:"unit_cents"`
}

// Total is what tasks.order_total returns; Python gets it as a dict.
type Total struct {
	ID         string `json:"id"`
	Items      int    `json:"items"`
	TotalCents int    `json:"total_cents"`
}

// ErrBadOrder fails a task for good: retrying cannot fix the input.
var ErrBadOrder = errors.New("bad order")

func orderTotal(in Order) (Total, error) {
	if in.DiscountPct < 0 || in.DiscountPct > 100 {
		return Total{}, fmt.Errorf("%w %s: discount_pct %d is not 0..100", ErrBadOrder, in.ID, in.DiscountPct)
	}
	t := Total{ID: in.ID}
	for i, l := range in.Lines {
		if l.Qty <= 0 || l.UnitCents < 0 {
			return Total{}, fmt.Errorf("%w %s: line %d (%s) has qty %d, unit_cents %d", ErrBadOrder, in.ID, i, l.SKU, l.Qty, l.UnitCents)
		}
		t.Items += l.Qty
		t.TotalCents += l.Qty * l.UnitCents
	}
	t.TotalCents -= t.TotalCents * in.DiscountPct / 100
	return t, nil
}

// ErrTemporary marks failures worth retrying: the far side may recover.
var ErrTemporary = errors.New("temporary failure")

// fetcher returns tasks.fetch_status: the HTTP status of a URL. A
// connection error or a 5xx is temporary (retried with backoff); a 4xx is
// the answer.
func fetcher(c *http.Client) func(ctx context.Context, url string) (int, error) {
	return func(ctx context.Context, url string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err // a malformed URL: fails at once
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrTemporary, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			return 0, fmt.Errorf("%w: %s answered %s", ErrTemporary, url, resp.Status)
		}
		return resp.StatusCode, nil
	}
}
