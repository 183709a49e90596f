// Package broker speaks Celery's message protocol and defines the
// transport and result-backend interfaces the rest of celeriac builds on.
//
// It decodes task messages of protocol 2 and protocol 1, in JSON or
// msgpack (with kombu's compressions), and encodes protocol 2 exactly as
// Celery 5.2.6 does: every header present (unset ones null), the
// [args, kwargs, embed] body, eta/expires with six fraction digits and an
// explicit offset. Pickle and YAML bodies are refused with a reason, never
// decoded.
//
// A transport implements [Broker] and registers itself for URL schemes;
// [Open] picks it from the URL, accepting Celery's ';'-separated failover
// list. Import the transports you use:
//
//	import (
//		"github.com/celeriac/celeriac/broker"
//		_ "github.com/celeriac/celeriac/broker/amqp"
//		_ "github.com/celeriac/celeriac/backend/redis"
//	)
//
//	b, err := broker.Open(ctx, "amqp://guest:guest@127.0.0.1:5672//", broker.Options{})
//	rb, err := broker.OpenBackend(ctx, "redis://127.0.0.1:6379/0", broker.BackendOptions{})
//	p, err := broker.NewProducer(broker.ProducerConfig{Broker: b, Backend: rb})
//	res, err := p.Send(ctx, "tasks.add", []any{2, 3}, nil, broker.WithCountdown(10*time.Second))
//	sum, err := res.Get(ctx) // waits on the backend's notification, not by polling
//
// Values decoded from messages and results use one model: nil, bool,
// int64, float64, string, []byte, []any and map[string]any (uint64 and
// json.Number only where a number does not fit int64). [Convert] turns
// such a value into a Go type without panicking.
package broker
