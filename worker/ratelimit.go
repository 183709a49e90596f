package worker

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/celeriac/celeriac/internal/clock"
	"golang.org/x/time/rate"
)

// ParseRate reads Celery's rate-limit strings: "10/s", "100/m", "1000/h",
// "0.5" (per second). An empty string or "0" means no limit (0, nil).
func ParseRate(s string) (rate.Limit, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	ops, unit, _ := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(ops), 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("worker: bad rate limit %q: want N/s, N/m or N/h", s)
	}
	var per time.Duration
	switch strings.TrimSpace(unit) {
	case "", "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return 0, fmt.Errorf("worker: bad rate limit %q: unit must be s, m or h", s)
	}
	return rate.Limit(n / per.Seconds()), nil
}

// rateLimits holds a token bucket per task name, as Celery's worker does
// (capacity 1: no bursts).
type rateLimits struct {
	mu      sync.Mutex
	limits  map[string]*rate.Limiter
	specs   map[string]string
	waiting map[*job]clockTimer // jobs waiting for a token
	stopped bool
}

type clockTimer = clock.Timer

func newRateLimits() *rateLimits {
	return &rateLimits{limits: map[string]*rate.Limiter{}, specs: map[string]string{}, waiting: map[*job]clockTimer{}}
}

func (r *rateLimits) set(name, spec string) error {
	lim, err := ParseRate(spec)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if lim == 0 {
		delete(r.limits, name)
		delete(r.specs, name)
		return nil
	}
	if l, ok := r.limits[name]; ok {
		l.SetLimit(lim)
	} else {
		r.limits[name] = rate.NewLimiter(lim, 1)
	}
	r.specs[name] = spec
	return nil
}

func (r *rateLimits) get(name string) (*rate.Limiter, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.limits[name], r.specs[name]
}

// RateLimit returns the task's current rate limit ("" for none).
func (w *Worker) RateLimit(name string) string {
	_, spec := w.rates.get(name)
	return spec
}

// SetRateLimit changes a task's rate limit at run time ("10/s", "100/m",
// "1000/h"; "" or "0" removes it). Tasks already waiting for a token keep
// their place; new ones follow the new rate.
func (w *Worker) SetRateLimit(name, spec string) error {
	if w.lookup(name) == nil {
		return fmt.Errorf("%w: %s", ErrNotRegistered, name)
	}
	return w.rates.set(name, spec)
}

// RateLimit sets the task's rate limit at registration ("10/s").
func RateLimit(spec string) TaskOption {
	return func(r *registered) error {
		if _, err := ParseRate(spec); err != nil {
			return err
		}
		r.rateLimit = spec
		return nil
	}
}

// throttle delays j until its task's bucket has a token, without blocking
// any other task: the job waits on a timer, not in a pool slot. It reports
// whether j was deferred.
func (w *Worker) throttle(j *job) bool {
	lim, _ := w.rates.get(j.t.Name)
	if lim == nil {
		return false
	}
	now := w.now()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return false
	}
	d := res.DelayFrom(now)
	if d <= 0 {
		return false
	}
	w.rates.mu.Lock()
	defer w.rates.mu.Unlock()
	if w.rates.stopped {
		res.CancelAt(now)
		w.requeue(j)
		return true
	}
	t := w.clock.AfterFunc(d, func() {
		w.rates.mu.Lock()
		_, mine := w.rates.waiting[j]
		delete(w.rates.waiting, j)
		w.rates.mu.Unlock()
		if mine {
			w.runq.push(j)
		}
	})
	w.rates.waiting[j] = t
	return true
}

// stop returns jobs waiting for a token to the broker.
func (r *rateLimits) stop(w *Worker) {
	r.mu.Lock()
	r.stopped = true
	waiting := r.waiting
	r.waiting = map[*job]clockTimer{}
	r.mu.Unlock()
	for j, t := range waiting {
		t.Stop()
		w.requeue(j)
	}
}

// throttled reports how many jobs wait for a token.
func (r *rateLimits) throttled() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiting)
}
