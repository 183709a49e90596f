// Package rpc is Celery's RPC result backend (rpc://): results travel as
// messages through the broker instead of being stored.
//
// The worker side (Store) publishes each state change — STARTED, RETRY,
// SUCCESS, FAILURE… — to the default exchange with routing key = the task
// message's reply_to and correlation_id = the task's correlation id (the
// task id), body {task_id, status, result, traceback, children} in the
// result serializer, delivery_mode 1 (2 with Persistent), exactly as
// celery/backends/rpc.py does. A task sent without reply_to gets no result.
// So a Python client configured with backend='rpc://' gets Go workers'
// results, over any broker transport (Redis lists, AMQP queues).
//
// The client side (Get, Wait) consumes the backend's own reply queue, named
// by ReplyTo() — Celery's oid — and declared non-durable, auto-delete with
// x-expires = Expires, as Celery declares it. A broker.Producer given this
// backend uses that name as reply_to and declares the queue before each
// send (broker.ReplyBackend). Only the latest state per task is kept, in
// memory, for at most MaxPending tasks; like Celery's, results are for the
// process that sent the task: another process cannot read them.
//
//	rb, err := broker.OpenBackend(ctx, "rpc://", broker.BackendOptions{Broker: b})
//	p, err := broker.NewProducer(broker.ProducerConfig{Broker: b, Backend: rb})
//	r, _ := p.Send(ctx, "tasks.add", []any{2, 3}, nil)
//	v, err := r.Get(ctx)
//
// Chords and groups need a storing backend (Celery says the same).
package rpc
