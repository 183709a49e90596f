// Package worker runs Go functions as Celery tasks. A Worker consumes the
// messages that Celery clients (`add.delay(2, 3)`, `send_task`) and other
// Celery or celeriac workers publish, runs the registered handler, and
// writes a result that Celery's AsyncResult reads back.
//
//	w, err := worker.New(worker.Config{Broker: b, Backend: rb, Queues: []broker.Queue{broker.TaskQueue("celery")}})
//	w.MustRegister("tasks.add", worker.Func(func(ctx context.Context, x, y int) (int, error) { return x + y, nil }))
//	err = w.Start(ctx)
//	…
//	err = w.Shutdown(ctx) // warm: running tasks finish, nothing is lost
//
// # One message's path
//
// Every message takes the same path, and each later feature hooks into one
// step of it rather than adding a path of its own:
//
//	consume  → decode (protocol v1/v2, json/msgpack; anything else is
//	           rejected with a logged reason, never requeued forever)
//	         → admit: revoked? expired? unknown task? ETA in the future
//	           (hold in memory, or park in the broker when far off)?
//	           rate limit? (consume.go, admit.go, eta.go, ratelimit.go)
//	         → guard: lease, done marker, result backend (guard.go;
//	           with the backend on the guard's Redis, one script reads
//	           all three and another stores the terminal state, marks
//	           the id done and releases the lease)
//	         → run: a bounded pool of Config.Concurrency slots, with soft
//	           and hard time limits (runq.go, execute.go)
//	         → store: STARTED/SUCCESS/FAILURE/RETRY/REVOKED in Celery's
//	           format; retries republished; chains, groups and chord
//	           callbacks applied (record.go, retry.go, canvas.go)
//	         → ack (or ack early with the AckEarly task option)
//
// Events (task-received … task-succeeded, worker heartbeats) are emitted on
// the way when Config.TaskEvents is set (events.go), the pidbox remote
// control answers celery inspect/control (control.go), and Prometheus
// metrics and health endpoints come from HTTPHandler (metrics.go, http.go).
//
// # Delivery guarantee
//
// Brokers deliver at least once. With a Config.Locker (Redis, or Redlock
// over several Redis masters), the worker's guard turns that into
// exactly-once completion per task id: a duplicate of a task that reached
// a terminal state is acked without running; a copy that finds another
// worker holding the task's lease is parked and re-checked, neither run
// nor lost; the lease is short (Config.GuardLease, renewed while the task
// runs) so a crashed worker's task runs again within seconds. The handler
// gets a fencing token (RequestFrom(ctx).FencingToken) that increases with every
// lease on the id, to refuse writes from a stale holder.
//
// What is guaranteed: one stored terminal state per task id within
// Config.GuardWindow, and no two workers running one id at once while
// leases hold. What is not: a side effect a handler made before the worker
// crashed, with no terminal state stored yet, happens again when the task
// re-runs — make such writes idempotent or fence them with the token.
// The Unguarded task option opts a task out; with no Locker the worker runs
// at-least-once, as Celery does, and says so at start-up.
//
// # Memory
//
// Tasks with a far ETA are not held in memory: past Config.ETAHoldHorizon
// or Config.ETAHoldLimit they are republished to the broker's delay
// mechanism (broker.Broker.PublishAt) and their message acked, so 100,000
// tasks with a one-hour countdown cost the worker almost nothing.
package worker
