// Package redis is Celery's Redis result backend for Go: task states,
// group results and the native chord join, written and read exactly as
// Celery 5.2.6 does, so Python clients read what Go workers store and the
// other way round.
//
// Import it for its side effect to make broker.OpenBackend understand
// redis://, rediss://, unix://, sentinel:// and redis+cluster:// URLs, or
// build a Backend directly:
//
//	b, err := redis.New(ctx, redis.Config{URL: "redis://127.0.0.1:6379/0"})
//	if err != nil {
//		return err
//	}
//	defer b.Close()
//	err = b.Store(ctx, &broker.ResultMeta{TaskID: id, Status: broker.StateSuccess, Result: int64(5)})
//	meta, err := b.Wait(ctx, id) // returns at once: the state is already there
//
// # What is stored
//
// A task's state lives in celery-task-meta-<id>: a JSON (or msgpack, per
// Config.Serializer = Celery's result_serializer) document with Celery's
// fields in Celery's order — status, result, traceback, children,
// date_done, [group_id], [parent_id], [extended fields], task_id — and
// Python's JSON separators. A task state is written with Celery's effect —
// a stored SUCCESS is never overwritten; otherwise SETEX (result_expires,
// one day by default; SET when results never expire) and PUBLISH of the
// same bytes on the key's name — but in one script, where Celery sends GET
// and then MULTI/SETEX/PUBLISH/EXEC. StoreAndRelease adds the worker's
// exactly-once bookkeeping to that script. A failure's result is the exception dict
// {"exc_type", "exc_message", "exc_module"} that Python's AsyncResult.get()
// re-raises; an exc_module Python cannot import is fine (Celery synthesizes
// the class).
//
// # Waiting
//
// Wait multiplexes every waiter of a Backend over one pub/sub connection.
// It subscribes to the key, and once the server confirms the subscription
// it GETs the key, so a state stored before the call is found and one
// stored after is delivered by PUBLISH — no polling. After a dropped
// connection go-redis re-subscribes and each confirmation triggers the GET
// again, so a state published while the connection was down is not lost.
// An idle connection is pinged every Config.HealthCheck and replaced if it
// stays silent.
//
// # Groups and chords
//
// SaveGroup and RestoreGroup read and write celery-taskset-meta-<gid> like
// GroupResult.save()/restore(). ChordPartReturn is Celery's native Redis
// chord join (the ".j" sorted set scored by group_index, ".t" and ".s"
// counters, one MULTI): when a chord's header runs partly on Python
// workers and partly on Go workers, exactly one of them sees the count
// reach the size and fires the body. SetChordSize is the sender's half.
//
// # Sentinel and Cluster
//
// sentinel://host:26379;sentinel://host2:26379/0?master_name=mymaster uses
// go-redis' failover client. redis+cluster://host:7000,host:7001 uses its
// cluster client (celeriac's own URL form; Celery 5.2 has no cluster
// backend): task keys are single-key operations, and the chord join keeps
// its ZADD+ZCOUNT in one transaction on the ".j" key's node.
package redis
