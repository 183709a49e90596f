package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The ack emulation below is kombu's QoS for Redis, key for key, so that Go
// and Python consumers restore each other's lost messages.

// recordUnacked writes the bookkeeping kombu's QoS.append writes when a
// message is delivered: the tag scored by delivery time in unacked_index,
// and [envelope, exchange, routing key] in the unacked hash.
func (b *Broker) recordUnacked(ctx context.Context, pipe goredis.Pipeliner, tag string, raw []byte, exchange, routingKey string) error {
	entry, err := unackedEntry(raw, exchange, routingKey)
	if err != nil {
		return err
	}
	now := float64(time.Now().UnixMicro()) / 1e6
	pipe.ZAdd(ctx, b.key(unackedIndexKey), goredis.Z{Score: now, Member: tag})
	pipe.HSet(ctx, b.key(unackedKey), tag, entry)
	return nil
}

func unackedEntry(raw []byte, exchange, routingKey string) ([]byte, error) {
	ex, _ := json.Marshal(exchange)
	rk, _ := json.Marshal(routingKey)
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: not JSON", ErrBadEnvelope)
	}
	out := make([]byte, 0, len(raw)+len(ex)+len(rk)+4)
	out = append(out, '[')
	out = append(out, raw...)
	out = append(out, ", "...)
	out = append(out, ex...)
	out = append(out, ", "...)
	out = append(out, rk...)
	return append(out, ']'), nil
}

// ackTag forgets a delivered message (kombu's QoS.ack).
func (b *Broker) ackTag(ctx context.Context, tag string) error {
	return b.retry(ctx, func(ctx context.Context) error {
		_, err := b.rdb.TxPipelined(ctx, func(pipe goredis.Pipeliner) error {
			pipe.ZRem(ctx, b.key(unackedIndexKey), tag)
			pipe.HDel(ctx, b.key(unackedKey), tag)
			return nil
		})
		return err
	})
}

// restoreTag is kombu's restore_by_tag: in one transaction watched on the
// unacked hash, drop the bookkeeping and push the message, marked
// redelivered, back to every queue its exchange and routing key reach —
// to the head (RPUSH, next to be popped) or, with leftmost, to the tail.
// kombu 5.2 pushes to the queue's base list whatever the priority.
func (b *Broker) restoreTag(ctx context.Context, tag string, leftmost bool) error {
	return b.retry(ctx, func(ctx context.Context) error {
		return b.restoreTagOnce(ctx, tag, leftmost)
	})
}

func (b *Broker) restoreTagOnce(ctx context.Context, tag string, leftmost bool) error {
	txf := func(tx *goredis.Tx) error {
		p, err := tx.HGet(ctx, b.key(unackedKey), tag).Bytes()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return err
		}
		var payload []byte
		var queues []string
		if len(p) > 0 {
			var entry []json.RawMessage
			var ex, rk string
			if err := json.Unmarshal(p, &entry); err != nil || len(entry) != 3 ||
				json.Unmarshal(entry[1], &ex) != nil || json.Unmarshal(entry[2], &rk) != nil {
				b.log.error("cannot restore unacked message: bad entry; removing it", "tag", tag, "entry", truncate(p))
			} else if payload, err = markRedelivered(entry[0]); err != nil {
				b.log.error("cannot restore unacked message: bad envelope; removing it", "tag", tag, "entry", truncate(p))
				payload = nil
			} else if queues, err = b.lookup(ctx, tx, ex, rk); err != nil {
				return err
			}
		}
		_, err = tx.TxPipelined(ctx, func(pipe goredis.Pipeliner) error {
			pipe.ZRem(ctx, b.key(unackedIndexKey), tag)
			pipe.HDel(ctx, b.key(unackedKey), tag)
			for _, q := range queues {
				if leftmost {
					pipe.LPush(ctx, b.key(q), payload)
				} else {
					pipe.RPush(ctx, b.key(q), payload)
				}
			}
			return nil
		})
		return err
	}
	for range 10 {
		err := b.rdb.Watch(ctx, txf, b.key(unackedKey))
		if !errors.Is(err, goredis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("redis: restoring %s: unacked hash kept changing", tag)
}

// unpop returns a message that was popped but never handed to the
// application (its consumer was cancelled meanwhile) to the head of the
// list it came from, unchanged, and drops its bookkeeping.
func (b *Broker) unpop(ctx context.Context, key, tag string, raw []byte) error {
	return b.retry(ctx, func(ctx context.Context) error {
		_, err := b.rdb.TxPipelined(ctx, func(pipe goredis.Pipeliner) error {
			pipe.ZRem(ctx, b.key(unackedIndexKey), tag)
			pipe.HDel(ctx, b.key(unackedKey), tag)
			pipe.RPush(ctx, key, raw)
			return nil
		})
		return err
	})
}

// releaseScript is redis-py's Lock.release: delete only our own token.
var releaseScript = goredis.NewScript(`
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0`)

// restoreVisible is kombu's QoS.restore_visible: under the unacked_mutex
// lock (taken without waiting, as redis-py's Lock), restore every message
// delivered longer than the visibility timeout ago (Celery leaves
// unacked_restore_limit unset, so there is no batch limit).
func (b *Broker) restoreVisible(ctx context.Context) (int, error) {
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	ok, err := b.rdb.SetNX(ctx, b.key(unackedMutexKey), token, unackedMutexTTL).Result()
	if err != nil || !ok {
		return 0, err // held by another consumer: it does the work
	}
	defer releaseScript.Run(context.WithoutCancel(ctx), b.rdb, []string{b.key(unackedMutexKey)}, token)
	ceil := float64(time.Now().Add(-b.cfg.VisibilityTimeout).UnixMicro()) / 1e6
	tags, err := b.rdb.ZRevRangeByScore(ctx, b.key(unackedIndexKey), &goredis.ZRangeBy{
		Max: strconv.FormatFloat(ceil, 'f', 6, 64), Min: "0",
	}).Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, tag := range tags {
		if b.isOwnInflight(tag) {
			// Still held here: kombu restores it anyway (the visibility
			// timeout is a promise to the other consumers), and so do we.
			b.forget(tag)
		}
		if err := b.restoreTagOnce(ctx, tag, false); err != nil {
			return n, err
		}
		n++
	}
	if n > 0 {
		b.log.warn("restored messages unacknowledged for longer than the visibility timeout", "count", n, "visibility_timeout", b.cfg.VisibilityTimeout)
	}
	return n, nil
}

func (b *Broker) isOwnInflight(tag string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.inflight[tag]
	return ok
}

func (b *Broker) forget(tag string) *pending {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.inflight[tag]
	delete(b.inflight, tag)
	return p
}

func truncate(b []byte) string {
	if len(b) > 512 {
		return string(b[:512]) + "…"
	}
	return string(b)
}

type logger struct{ l *slog.Logger }

func (l logger) debug(msg string, args ...any) { l.l.Debug("redis broker: "+msg, args...) }
func (l logger) warn(msg string, args ...any)  { l.l.Warn("redis broker: "+msg, args...) }
func (l logger) error(msg string, args ...any) { l.l.Error("redis broker: "+msg, args...) }
