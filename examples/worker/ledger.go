package main

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/worker"
)

// Ledger keeps account balances in Redis for tasks.credit, applying each
// task's credit once however often the task runs.
//
// Two things can run a task twice: a worker that crashed after crediting
// but before storing SUCCESS (its task runs again elsewhere), and a worker
// paused past its lease (a GC pause, a frozen VM) that wakes up still
// "running" a task another worker has since taken over. The exactly-once
// guard hands each run a fencing token larger than any earlier run's, so
// the write records the token with the credit and refuses older ones:
//
//	no entry yet             -> credit the account, record the token
//	entry, token >= recorded -> a re-run after a crash: already credited,
//	                            record the newer token, credit nothing
//	entry, token <  recorded -> a stale holder: refuse (ErrStaleToken)
type Ledger struct {
	rdb    goredis.UniversalClient
	prefix string
}

// NewLedger keeps balances under keys starting with prefix.
func NewLedger(rdb goredis.UniversalClient, prefix string) *Ledger {
	return &Ledger{rdb: rdb, prefix: prefix}
}

// ErrStaleToken refuses a write from a run that lost its lease.
var ErrStaleToken = errors.New("ledger: stale fencing token")

// ErrUnfenced refuses a credit that runs without the guard's token.
var ErrUnfenced = errors.New("ledger: tasks.credit needs the exactly-once guard (a fencing token)")

// KEYS[1] the task's entry, KEYS[2] the account's balance;
// ARGV[1] the token, ARGV[2] the amount. Returns the balance, or -1 for a
// stale token (balances here never go negative: credits are positive).
var creditScript = goredis.NewScript(`
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
local token = tonumber(ARGV[1])
if token < fence then return -1 end
if fence == 0 then redis.call('INCRBY', KEYS[2], ARGV[2]) end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'amount', ARGV[2])
return tonumber(redis.call('GET', KEYS[2]) or '0')
`)

// credit is tasks.credit(account, amount): adds amount (> 0) to the
// account and returns the new balance.
func (l *Ledger) credit(ctx context.Context, account string, amount int) (int64, error) {
	if amount <= 0 {
		return 0, fmt.Errorf("ledger: amount must be positive, got %d", amount)
	}
	req := worker.RequestFrom(ctx)
	if req == nil || req.FencingToken == 0 {
		return 0, ErrUnfenced
	}
	bal, err := creditScript.Run(ctx, l.rdb,
		[]string{l.prefix + "entry:" + req.ID, l.prefix + "balance:" + account},
		req.FencingToken, amount).Int64()
	if err != nil {
		return 0, fmt.Errorf("ledger: credit %s: %w", account, err)
	}
	if bal < 0 {
		return 0, fmt.Errorf("%w: task %s token %d", ErrStaleToken, req.ID, req.FencingToken)
	}
	return bal, nil
}

// Balance reads an account's balance.
func (l *Ledger) Balance(ctx context.Context, account string) (int64, error) {
	n, err := l.rdb.Get(ctx, l.prefix+"balance:"+account).Int64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	return n, err
}
