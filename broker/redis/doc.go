// Package redis is the Redis broker transport, speaking kombu 5.2's Redis
// protocol so that Go and Python Celery workers share one Redis broker:
//
//	b, err := broker.Open(ctx, "redis://127.0.0.1:6379/0", broker.Options{})
//
// (registered for redis://, rediss://, unix://, socket://, redis+socket://
// and sentinel:// URLs; parsing, TLS and Sentinel come from
// internal/redisurl). Two of kombu's transport options, which Celery sets
// in broker_transport_options, can be given in the URL or in Config:
// ?visibility_timeout=SECONDS (Config.VisibilityTimeout) and
// ?global_keyprefix=PREFIX (Config.GlobalKeyPrefix, prefixing every key and
// pub/sub channel as kombu does). Other kombu options (sep, priority_steps,
// fanout_prefix, fanout_patterns, unacked_* key names) keep their defaults.
//
// Wire format, key for key with kombu/transport/redis.py:
//
//   - A message is kombu's JSON envelope: body base64 with
//     properties.body_encoding "base64", headers, content-type,
//     content-encoding, and properties with delivery_info {exchange,
//     routing_key} and a fresh uuid delivery_tag.
//   - Queue Q is the lists Q, Q\x06\x163, Q\x06\x166, Q\x06\x169 (kombu's
//     priority steps 0, 3, 6, 9; 0 is the most urgent). Publish is LPUSH;
//     consumers BRPOP all their queues' lists at once, bucket-major, and
//     rotate the queue order round-robin.
//   - Named direct and topic exchanges route through the set
//     _kombu.binding.<exchange>, members "routing_key\x06\x16pattern\x06\x16queue"
//     (pattern: kombu's regex for topic bindings). Exchange types are known
//     per client, as in kombu; Celery's celeryev and celery.pidbox are
//     fanout on Redis. A message no binding matches is dropped, as kombu
//     drops it.
//   - Fanout exchanges (events, remote control) are PUBLISH on
//     "/<db>.<exchange>[/<routing key>]"; consumers PSUBSCRIBE with '#'
//     rewritten to '*'. Fanout deliveries are never acknowledged.
//   - Ack emulation: a delivered message is recorded in the unacked hash
//     ([envelope, exchange, routing key]) and the unacked_index sorted set
//     (delivery time). Ack removes both. Reject with requeue, Close, and the
//     visibility-timeout restore (any consumer, every 10 s as a Celery
//     worker does, under the unacked_mutex lock) push the message back
//     marked redelivered, exactly as kombu's restore_by_tag does. So a
//     crashed Go worker's messages are restored by Python workers and the
//     other way round.
//
// Delayed delivery (PublishAt) is celeriac's own: kombu has none. Messages
// are parked in the sorted set _celeriac.delayed and moved to their queues
// by a Lua script that every connected Broker runs four times a second; see
// delayed.go.
//
// Differences from AMQP that callers must know, and why the conformance
// suite runs with these Harness flags:
//
//   - InvertedPriority: lower numbers are more urgent (kombu's choice).
//   - NoDeadLetter: kombu's Redis transport has no dead-lettering; a
//     rejected message without requeue is deleted.
//   - NoDeclareMismatch: Redis stores no queue arguments (kombu's
//     queue_declare writes nothing), so there is nothing to mismatch.
//
// Messages held unacknowledged longer than the visibility timeout (one
// hour by default) are redelivered by whichever consumer polls next, as
// with Python workers: keep ETA waits and task run times below it.
//
// A lost connection is retried with backoff (Options.MinBackoff to
// MaxBackoff): consumers keep polling until Redis is back, and calls made
// meanwhile wait, bounded by their context. An undecodable list element
// is moved to the list _celeriac.undecodable.<queue> and logged.
package redis
