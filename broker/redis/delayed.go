package redis

import (
	"context"
	"encoding/json"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
)

// kombu's Redis transport has no delayed delivery: Celery keeps ETA tasks
// unacknowledged in worker memory. PublishAt instead parks the message in
// the sorted set _celeriac.delayed, scored by its due time in milliseconds;
// every connected Broker runs moveDue a few times a second, and the script
// atomically moves due members to their lists (or PUBLISHes them to their
// fanout channel). Parked messages live in Redis only, so they survive
// worker restarts and cost no worker memory.
//
// A member is the JSON array ["list"|"pub", [targets…], envelope]: targets
// are resolved when PublishAt is called (list keys for the bound queues'
// priority, or the fanout channel), so a binding added later does not
// receive it.
var moveDue = goredis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local ok, entry = pcall(cjson.decode, m)
  if ok and type(entry) == 'table' and type(entry[2]) == 'table' and type(entry[3]) == 'string' then
    for _, t in ipairs(entry[2]) do
      if entry[1] == 'pub' then
        redis.call('PUBLISH', t, entry[3])
      else
        redis.call('LPUSH', t, entry[3])
      end
    end
  else
    redis.call('LPUSH', KEYS[2], m)
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due`)

// moveBatch bounds the work of one script run.
const moveBatch = 100

// PublishAt parks p in Redis until at, then routes it.
func (b *Broker) PublishAt(ctx context.Context, p broker.Publishing, at time.Time) error {
	env, err := b.envelopeFor(p)
	if err != nil {
		return err
	}
	return b.retry(ctx, func(ctx context.Context) error {
		kind := "list"
		var targets []string
		if p.Exchange != "" && b.kind(p.Exchange) == "fanout" {
			kind = "pub"
			targets = []string{b.fanoutChannel(p.Exchange, p.RoutingKey)}
		} else {
			queues, err := b.lookup(ctx, b.rdb, p.Exchange, p.RoutingKey)
			if err != nil {
				return err
			}
			for _, q := range queues {
				targets = append(targets, b.key(queueKey(q, int(p.Message.Properties.Priority))))
			}
		}
		if len(targets) == 0 {
			b.log.debug("delayed message dropped: no queue bound", "exchange", p.Exchange, "routing_key", p.RoutingKey)
			return nil
		}
		member, err := json.Marshal([]any{kind, targets, string(env)})
		if err != nil {
			return err
		}
		if err := b.rdb.ZAdd(ctx, b.key(delayedKey), goredis.Z{Score: float64(at.UnixMilli()), Member: member}).Err(); err != nil {
			return err
		}
		if !at.After(time.Now()) { // already due: route it now
			return moveDue.Run(ctx, b.rdb, []string{b.key(delayedKey), b.key(delayedKey + ".bad")}, time.Now().UnixMilli(), moveBatch).Err()
		}
		return nil
	})
}

// runDelayed moves due parked messages until Close.
func (b *Broker) runDelayed() {
	defer b.wg.Done()
	ctx := b.ctx
	t := time.NewTicker(b.cfg.DelayPoll)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		for {
			n, err := moveDue.Run(ctx, b.rdb, []string{b.key(delayedKey), b.key(delayedKey + ".bad")}, time.Now().UnixMilli(), moveBatch).Int()
			if err != nil {
				if ctx.Err() == nil && !isConnErr(err) {
					b.log.warn("moving delayed messages", "err", err)
				}
				break
			}
			if n < moveBatch {
				break
			}
		}
	}
}
