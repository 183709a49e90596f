package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
)

// Chord keys: Celery 5.2.6 keeps a chord's progress next to its group key.
func chordKeys(groupID string) (j, t, s string) {
	g := GroupKey(groupID)
	return g + ".j", g + ".t", g + ".s"
}

// SetChordSize records how many header tasks the chord has, as Celery's
// set_chord_size does (the decimal number with SETEX and PUBLISH). The
// sender calls it before publishing the last header task.
func (b *Backend) SetChordSize(ctx context.Context, groupID string, size int) error {
	if err := b.check(); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("redis: chord %s: negative size %d", groupID, size)
	}
	_, _, s := chordKeys(groupID)
	if err := b.set(ctx, s, []byte(strconv.Itoa(size))); err != nil {
		return fmt.Errorf("redis: chord %s: set size: %w", groupID, err)
	}
	return nil
}

// AddToChord raises the expected part count by one (INCR of the ".t"
// key), as Celery's add_to_chord does when a header task is replaced.
func (b *Backend) AddToChord(ctx context.Context, groupID string) error {
	if err := b.check(); err != nil {
		return err
	}
	_, t, _ := chordKeys(groupID)
	if err := b.client.Incr(ctx, t).Err(); err != nil {
		return fmt.Errorf("redis: chord %s: add: %w", groupID, err)
	}
	return nil
}

// The chord types are the broker package's, so a worker can use any
// backend with a native chord join.
type (
	ChordPart  = broker.ChordPart
	ChordJoin  = broker.ChordJoin
	ChordError = broker.ChordError
)

// ChordPartReturn records a finished header task exactly as Celery
// 5.2.6's RedisBackend.on_chord_part_return does, so Python and Go workers
// can share one chord: in one MULTI, ZADD the member [1, id, state,
// result] to ".j" scored by group_index, ZCOUNT it, GET ".t" and ".s", and
// refresh the three keys' expiry. The part that brings the count to
// size + adjustment gets Ready with the ordered results (or the first
// failure); every other part gets Ready == false. On Redis Cluster, where
// the three keys live in different slots, the ZADD and ZCOUNT stay one
// transaction (that is what makes Ready exact) and the rest follows it.
func (b *Backend) ChordPartReturn(ctx context.Context, part ChordPart) (*ChordJoin, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if part.GroupID == "" || part.TaskID == "" {
		return nil, errors.New("redis: ChordPartReturn needs GroupID and TaskID")
	}
	member, err := b.encode([]any{1, part.TaskID, string(part.State), orderResult(part.Result)})
	if err != nil {
		return nil, fmt.Errorf("redis: chord %s: %w", part.GroupID, err)
	}
	score := math.Inf(1)
	if part.GroupIndex != nil {
		score = float64(*part.GroupIndex)
	}
	j, t, s := chordKeys(part.GroupID)
	var (
		zadd         *goredis.IntCmd
		zcount       *goredis.IntCmd
		tget, sget   *goredis.StringCmd
		expire       = b.expires
		zsetCommands = func(p goredis.Pipeliner) {
			zadd = p.ZAdd(ctx, j, goredis.Z{Score: score, Member: member})
			zcount = p.ZCount(ctx, j, "-inf", "+inf")
		}
		counterCommands = func(p goredis.Pipeliner) {
			tget = p.Get(ctx, t)
			sget = p.Get(ctx, s)
		}
	)
	if b.cluster {
		_, err = b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			zsetCommands(p)
			if expire > 0 {
				p.Expire(ctx, j, expire)
			}
			return nil
		})
		if err == nil {
			_, err = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
				counterCommands(p)
				if expire > 0 {
					p.Expire(ctx, t, expire)
					p.Expire(ctx, s, expire)
				}
				return nil
			})
		}
	} else {
		_, err = b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			zsetCommands(p)
			counterCommands(p)
			if expire > 0 {
				p.Expire(ctx, j, expire)
				p.Expire(ctx, t, expire)
				p.Expire(ctx, s, expire)
			}
			return nil
		})
	}
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis: chord %s: record part %s: %w", part.GroupID, part.TaskID, err)
	}
	join := &ChordJoin{Added: zadd.Val() > 0, Count: int(zcount.Val())}
	adjust, err := counter(tget)
	if err != nil {
		return nil, fmt.Errorf("redis: chord %s: .t: %w", part.GroupID, err)
	}
	size, err := counter(sget)
	if err != nil {
		return nil, fmt.Errorf("redis: chord %s: .s: %w", part.GroupID, err)
	}
	if size == 0 && errors.Is(sget.Err(), goredis.Nil) {
		return join, nil // size not written yet: the sender is still publishing
	}
	join.Size = size + adjust
	if join.Count != join.Size {
		return join, nil
	}
	join.Ready = true
	if err := b.collect(ctx, part.GroupID, j, join); err != nil {
		return nil, err
	}
	return join, nil
}

// counter reads an integer key that may be absent.
func counter(c *goredis.StringCmd) (int, error) {
	v, err := c.Result()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("not an integer: %q", v)
	}
	return n, nil
}

// collect fills a ready join: from the saved group when the sender saved
// one (a header with nested groups), else from the ".j" members.
func (b *Backend) collect(ctx context.Context, groupID, j string, join *ChordJoin) error {
	raw, err := b.client.Get(ctx, GroupKey(groupID)).Bytes()
	switch {
	case err == nil:
		tree, err := parseGroupDoc(groupID, raw)
		if err != nil {
			return err
		}
		join.Results, join.Err, err = b.joinTree(ctx, groupID, tree)
		return err
	case !errors.Is(err, goredis.Nil):
		return fmt.Errorf("redis: chord %s: %w", groupID, err)
	}
	members, err := b.client.ZRange(ctx, j, 0, -1).Result()
	if err != nil {
		return fmt.Errorf("redis: chord %s: read parts: %w", groupID, err)
	}
	join.Results = make([]any, 0, len(members))
	for _, m := range members {
		v, _, err := decodeValue([]byte(m))
		if err != nil {
			return fmt.Errorf("redis: chord %s: part %q: %w", groupID, m, err)
		}
		tup, ok := v.([]any)
		if !ok || len(tup) != 4 {
			return fmt.Errorf("redis: chord %s: part is %T, want [1, id, state, result]", groupID, v)
		}
		tid, _ := tup[1].(string)
		state, _ := tup[2].(string)
		if broker.State(state).Propagates() {
			exc := exceptionOf(tup[3])
			join.Results = nil
			join.Err = &ChordError{GroupID: groupID, TaskID: tid, Dependency: exc,
				Message: fmt.Sprintf("Dependency %s raised %s", tid, pyExcRepr(exc))}
			return nil
		}
		join.Results = append(join.Results, tup[3])
	}
	return nil
}

// ChordCleanup deletes the chord's keys once its body was sent, as Celery
// does (a failed chord's keys are left to expire).
func (b *Backend) ChordCleanup(ctx context.Context, groupID string) error {
	if err := b.check(); err != nil {
		return err
	}
	j, t, s := chordKeys(groupID)
	var err error
	if b.cluster {
		_, err = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.Del(ctx, j)
			p.Del(ctx, t)
			p.Del(ctx, s)
			return nil
		})
	} else {
		_, err = b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Del(ctx, j)
			p.Del(ctx, t)
			p.Del(ctx, s)
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("redis: chord %s: cleanup: %w", groupID, err)
	}
	return nil
}

// pyExcRepr is Python's repr() of the exception Celery rebuilds from exc:
// ValueError('bad'), KeyError('k', 1), TaskError().
func pyExcRepr(exc broker.ExceptionInfo) string {
	name := exc.Type
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('(')
	for i, a := range exc.Message {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(broker.Repr(a))
	}
	b.WriteByte(')')
	return b.String()
}

var _ broker.ChordBackend = (*Backend)(nil)
var _ broker.GroupBackend = (*Backend)(nil)
