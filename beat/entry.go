package beat

import (
	"fmt"
	"time"

	"github.com/celeriac/celeriac/beat/schedule"
	"github.com/celeriac/celeriac/broker"
)

// Entry is one periodic task, like an item of Celery's beat_schedule.
type Entry struct {
	// Name identifies the entry; its run history is kept under it.
	Name string
	// Task is the task name the message carries.
	Task   string
	Args   []any
	Kwargs map[string]any
	// Options are Celery's apply_async options.
	Options Options
	// Schedule says when it is due.
	Schedule schedule.Schedule
	// LastRunAt seeds the run history when beat has none of its own (a
	// source such as django-celery-beat keeps one). Zero: beat counts the
	// entry's first appearance as its last run, as Celery does, so an
	// interval entry first runs one interval after it appears.
	LastRunAt time.Time
	// OneOff entries run once and are then dropped (django's one_off).
	OneOff bool
	// StartTime: not due before this (django's start_time); an entry due
	// earlier runs at StartTime.
	StartTime time.Time
	// ExpiresAt: never due after this (django's expires).
	ExpiresAt time.Time
}

// Options are the message options Celery's beat passes to apply_async.
type Options struct {
	Queue      string
	Exchange   string
	RoutingKey string
	Priority   *uint8
	// Expires is how long after sending the task expires (Celery's
	// `expires` in seconds); 0 means never.
	Expires time.Duration
	// ExpiresAt is an absolute expiry (django's expires / expire_seconds).
	ExpiresAt  time.Time
	Headers    map[string]any
	Serializer string
}

func (e *Entry) validate() error {
	switch {
	case e.Name == "":
		return fmt.Errorf("%w: entry has no name", ErrInvalidEntry)
	case e.Task == "":
		return fmt.Errorf("%w: entry %q: task is required", ErrInvalidEntry, e.Name)
	case e.Schedule == nil:
		return fmt.Errorf("%w: entry %q: schedule is required", ErrInvalidEntry, e.Name)
	}
	switch e.Options.Serializer {
	case "", broker.SerializerJSON, broker.SerializerMsgpack:
	default:
		return fmt.Errorf("%w: entry %q: options.serializer %q: use json or msgpack", ErrInvalidEntry, e.Name, e.Options.Serializer)
	}
	return nil
}

// sendOptions turns the entry's options into producer options.
func (e *Entry) sendOptions() []broker.SendOption {
	o := e.Options
	var opts []broker.SendOption
	if o.Queue != "" {
		opts = append(opts, broker.WithQueue(o.Queue))
	}
	if o.Exchange != "" {
		opts = append(opts, broker.WithExchange(o.Exchange, o.RoutingKey))
	} else if o.RoutingKey != "" {
		opts = append(opts, broker.WithRoutingKey(o.RoutingKey))
	}
	if o.Priority != nil {
		opts = append(opts, broker.WithPriority(*o.Priority))
	}
	if o.Expires > 0 {
		opts = append(opts, broker.WithExpires(o.Expires))
	}
	if !o.ExpiresAt.IsZero() {
		opts = append(opts, broker.WithExpiresAt(o.ExpiresAt))
	}
	if len(o.Headers) > 0 {
		opts = append(opts, broker.WithHeaders(o.Headers))
	}
	if o.Serializer != "" {
		opts = append(opts, broker.WithSerializer(o.Serializer))
	}
	return opts
}

// due returns when the entry is next due after last, honouring its
// start and expiry times; zero means never.
func (e *Entry) due(last time.Time) time.Time {
	next := e.Schedule.Next(last)
	if next.IsZero() {
		return next
	}
	if !e.StartTime.IsZero() && next.Before(e.StartTime) {
		// django-celery-beat holds an entry back until start_time and then
		// judges it as usual, so an entry that came due meanwhile runs then.
		next = e.StartTime
	}
	if !e.ExpiresAt.IsZero() && next.After(e.ExpiresAt) {
		return time.Time{}
	}
	return next
}
