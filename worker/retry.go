package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/celeriac/celeriac/broker"
)

// RetryError asks the worker to run the task again later, as Celery's
// self.retry() does: the message is republished with the same id and
// retries+1, RETRY is stored with the reason, and the original is acked.
// Build it with Retry.
type RetryError struct {
	// Err is the reason, stored with the RETRY state and used as the
	// failure once retries run out (nil: MaxRetriesExceededError).
	Err error
	// Countdown delays the retry; zero means the task's DefaultRetryDelay.
	Countdown time.Duration
	// ETA sets the retry time instead of Countdown.
	ETA *time.Time
	// MaxRetries overrides the task's limit for this call.
	MaxRetries *int
}

func (e *RetryError) Error() string {
	if e.Err != nil {
		return "retry: " + e.Err.Error()
	}
	return "retry"
}

func (e *RetryError) Unwrap() error { return e.Err }

// RetryOption tunes Retry.
type RetryOption func(*RetryError)

// Countdown retries after d.
func Countdown(d time.Duration) RetryOption { return func(e *RetryError) { e.Countdown = d } }

// At retries at t.
func At(t time.Time) RetryOption { return func(e *RetryError) { e.ETA = &t } }

// WithMaxRetries overrides the task's retry limit for this call.
func WithMaxRetries(n int) RetryOption { return func(e *RetryError) { e.MaxRetries = &n } }

// Retry returns an error that makes the worker retry the task; return it
// from the handler: return nil, worker.Retry(err, worker.Countdown(10*time.Second)).
func Retry(err error, opts ...RetryOption) error {
	e := &RetryError{Err: err}
	for _, o := range opts {
		o(e)
	}
	return e
}

// RejectError rejects the message, as raising Celery's Reject does.
type RejectError struct {
	Requeue bool
	Reason  string
}

func (e *RejectError) Error() string { return "reject: " + e.Reason }

// Reject returns an error that rejects the task's message: requeued, or
// dropped (dead-lettered where the queue has a dead-letter exchange).
// Nothing is stored.
func Reject(reason string, requeue bool) error { return &RejectError{Requeue: requeue, Reason: reason} }

// ErrIgnore acks the message and stores nothing, as Celery's Ignore.
var ErrIgnore = errors.New("worker: ignore task")

// AutoRetryPolicy retries a task automatically when it fails with a
// matching error, as Celery's autoretry_for with retry_backoff does.
type AutoRetryPolicy struct {
	// For selects the errors to retry; nil retries every error.
	// See RetryOn and RetryOnType.
	For func(error) bool
	// MaxRetries bounds the retries (0: the task's MaxRetries, default 3;
	// negative: forever). Once exhausted the task fails with the last error.
	MaxRetries int
	// Backoff is the first delay of an exponential backoff (delay =
	// Backoff × 2^retries, capped at BackoffMax); zero uses the task's
	// DefaultRetryDelay for every retry.
	Backoff time.Duration
	// BackoffMax caps the backoff. Default 10 minutes (Celery's 600 s).
	BackoffMax time.Duration
	// NoJitter turns off full jitter (a uniformly random delay between 0
	// and the backoff), which Celery applies by default.
	NoJitter bool
}

// AutoRetry retries the task by policy when it fails.
func AutoRetry(p AutoRetryPolicy) TaskOption {
	return func(r *registered) error {
		if p.Backoff < 0 || p.BackoffMax < 0 {
			return errors.New("AutoRetry: negative backoff")
		}
		if p.BackoffMax == 0 {
			p.BackoffMax = 10 * time.Minute
		}
		r.autoRetry = &p
		return nil
	}
}

// RetryOn matches errors that are (errors.Is) one of targets.
func RetryOn(targets ...error) func(error) bool {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

// RetryOnType matches errors that have an error of type T in their chain.
func RetryOnType[T error]() func(error) bool {
	return func(err error) bool {
		var target T
		return errors.As(err, &target)
	}
}

// autoRetry turns a matching failure into a RetryError per the task's policy.
func (w *Worker) autoRetry(j *job, out *outcome) {
	p := j.reg.autoRetry
	if p == nil || out.err == nil || out.exc != nil { // hard time limits are not retried
		return
	}
	var re *RetryError
	var rj *RejectError
	if errors.As(out.err, &re) || errors.As(out.err, &rj) || errors.Is(out.err, ErrIgnore) {
		return
	}
	if p.For != nil && !p.For(out.err) {
		return
	}
	r := &RetryError{Err: out.err}
	if p.MaxRetries != 0 {
		m := p.MaxRetries
		r.MaxRetries = &m
	}
	if p.Backoff > 0 {
		r.Countdown = backoff(p, j.t.Retries, w.random)
		if r.Countdown == 0 {
			r.Countdown = time.Nanosecond // "now", not the default delay
		}
	}
	out.err = r
}

// backoff is Celery's get_exponential_backoff_interval with full jitter.
func backoff(p *AutoRetryPolicy, retries int, random func(int64) int64) time.Duration {
	d := p.BackoffMax
	if retries < 62 {
		if x := p.Backoff << retries; x > 0 && x < d && x>>retries == p.Backoff {
			d = x
		}
	}
	if !p.NoJitter {
		d = time.Duration(random(int64(d) + 1))
	}
	return d
}

// classifyControl handles the control-flow errors; it reports whether it did.
func (w *Worker) classifyControl(j *job, out *outcome) bool {
	w.autoRetry(j, out)
	var rj *RejectError
	var re *RetryError
	switch {
	case errors.As(out.err, &rj):
		out.requeue = rj.Requeue
		return true
	case errors.Is(out.err, ErrIgnore):
		out.ignore = true
		return true
	case errors.As(out.err, &re):
		max := 3
		if j.reg.maxRetries != nil {
			max = *j.reg.maxRetries
		}
		if re.MaxRetries != nil {
			max = *re.MaxRetries
		}
		if max >= 0 && j.t.Retries >= max {
			out.state = broker.StateFailure
			if re.Err != nil {
				out.err = re.Err
				out.exc = exceptionOf(re.Err)
			} else {
				out.exc = &broker.ExceptionInfo{Type: "MaxRetriesExceededError", Module: "celery.exceptions",
					Message: []any{fmt.Sprintf("Can't retry %s[%s] args:%s kwargs:%s", j.t.Name, j.t.ID, broker.ArgsRepr(j.t.Args), broker.Repr(j.t.Kwargs))}}
			}
			out.traceback = traceback(j, out)
			return true
		}
		out.state = broker.StateRetry
		if re.Err != nil {
			out.exc = exceptionOf(re.Err)
		}
		return true
	}
	return false
}

// retry republishes the task for its next attempt. It returns an error if
// publishing failed; the message is then rejected (Celery does the same).
func (w *Worker) retry(j *job, out *outcome) error {
	var re *RetryError
	errors.As(out.err, &re)
	eta := w.now().Add(j.reg.retryDelay)
	if re.ETA != nil {
		eta = *re.ETA
	} else if re.Countdown > 0 {
		eta = w.now().Add(re.Countdown)
	}
	eta = eta.UTC()
	t := *j.t
	t.Retries++
	t.ETA = &eta
	t.Origin = ""
	ctx, cancel := settleCtx()
	defer cancel()
	queue, exchange, rk := retryRoute(j)
	msg, err := broker.EncodeTask(&t, broker.EncodeOptions{Serializer: serializerOf(j.t.ContentType)})
	if err != nil {
		return err
	}
	return w.producer.Publish(ctx, msg, queue, exchange, rk)
}

// retryRoute sends a retry where the message came from: a message that
// arrived through the default exchange goes back to its queue, otherwise
// to the same exchange and routing key (Celery's rule).
func retryRoute(j *job) (queue, exchange, rk string) {
	if j.d.Exchange == "" {
		q := j.d.RoutingKey
		if q == "" {
			q = j.d.Queue
		}
		return q, "", q
	}
	return "", j.d.Exchange, j.d.RoutingKey
}

func serializerOf(contentType string) string {
	if contentType == broker.ContentMsgpack {
		return broker.SerializerMsgpack
	}
	return broker.SerializerJSON
}
