package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/redisurl"
)

// Key prefixes of Celery's key-value backends.
const (
	TaskKeyPrefix  = "celery-task-meta-"
	GroupKeyPrefix = "celery-taskset-meta-"
)

// TaskKey is the key (and pub/sub channel) of a task's state.
func TaskKey(taskID string) string { return TaskKeyPrefix + taskID }

// GroupKey is the key of a saved group result; chords add ".j", ".t", ".s".
func GroupKey(groupID string) string { return GroupKeyPrefix + groupID }

// maxValue is the largest value Redis stores (512 MB); Celery refuses
// larger results with BackendStoreError.
const maxValue = 512 << 20

// Errors.
var (
	ErrClosed        = errors.New("redis: backend closed")
	ErrTooLarge      = errors.New("redis: value too large for Redis (512 MB)")
	ErrGroupNotFound = errors.New("redis: group result not found")
)

// Config configures a Backend. The zero value of each field is a default.
type Config struct {
	// URL of the Redis deployment: redis://, rediss://, unix://,
	// sentinel://…?master_name=, redis+cluster:// (see internal/redisurl).
	// Ignored when Client is set.
	URL string
	// Client, when set, is used instead of dialing URL; Close leaves it open.
	Client goredis.UniversalClient
	// MasterName is the Sentinel master name when the URL has no
	// ?master_name= (Celery keeps it in result_backend_transport_options).
	MasterName string
	// Expires is how long results are kept (Celery's result_expires):
	// 0 means one day, negative keeps them forever (plain SET).
	Expires time.Duration
	// Serializer of written documents, "json" (default) or "msgpack"; it
	// must match the Python side's result_serializer. Reading accepts both.
	Serializer string
	// HealthCheck is how long the shared pub/sub connection may stay silent
	// before it is pinged; a ping unanswered for as long again replaces the
	// connection. Default 15 s.
	HealthCheck time.Duration
	// ClientName is sent with CLIENT SETNAME when dialing URL. Default "celeriac".
	ClientName string
	// KeyPrefix prefixes celeriac's own keys (the revoked set); Celery's
	// keys keep their names. Default "celeriac:".
	KeyPrefix string
	// Logger receives connection problems; nil discards them.
	Logger *slog.Logger
}

// Backend is Celery's Redis result backend: task states in
// celery-task-meta-<id>, group results, and the native chord join. It is
// safe for concurrent use.
type Backend struct {
	client     goredis.UniversalClient
	ownClient  bool
	cluster    bool
	serializer string
	expires    time.Duration // > 0: SETEX; 0: plain SET
	log        *slog.Logger
	hub        *hub
	closed     atomic.Bool
	now        func() time.Time
	prefix     string
}

var _ broker.ResultBackend = (*Backend)(nil)

func init() {
	broker.RegisterBackend(Open, "redis", "rediss", "unix", "redis+socket",
		"sentinel", "redis+cluster", "rediss+cluster")
}

// Open is the broker.BackendOpenFunc for Redis URLs.
func Open(ctx context.Context, rawURL string, opts broker.BackendOptions) (broker.ResultBackend, error) {
	return New(ctx, Config{
		URL:        rawURL,
		Expires:    opts.Expires,
		Serializer: opts.Serializer,
		Logger:     opts.Logger,
		ClientName: opts.Name,
	})
}

// New checks cfg, connects and pings the server, so that a wrong URL or an
// unreachable Redis is reported at start-up.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	b := &Backend{log: cfg.Logger, now: time.Now, prefix: cfg.KeyPrefix}
	if b.prefix == "" {
		b.prefix = "celeriac:"
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	switch strings.ToLower(cfg.Serializer) {
	case "", broker.SerializerJSON, broker.ContentJSON:
		b.serializer = broker.SerializerJSON
	case broker.SerializerMsgpack, broker.ContentMsgpack:
		b.serializer = broker.SerializerMsgpack
	default:
		return nil, fmt.Errorf("redis: Config.Serializer %q: use json or msgpack (pickle and yaml are refused)", cfg.Serializer)
	}
	switch {
	case cfg.Expires == 0:
		b.expires = 24 * time.Hour
	case cfg.Expires > 0:
		// SETEX takes whole seconds; never round a short expiry down to
		// "forever".
		b.expires = time.Duration(math.Ceil(cfg.Expires.Seconds())) * time.Second
	}
	if cfg.HealthCheck < 0 {
		return nil, errors.New("redis: Config.HealthCheck must not be negative")
	}
	if cfg.HealthCheck == 0 {
		cfg.HealthCheck = 15 * time.Second
	}
	if cfg.Client != nil {
		b.client = cfg.Client
	} else {
		if cfg.URL == "" {
			return nil, errors.New("redis: Config.URL or Config.Client is required")
		}
		name := cfg.ClientName
		if name == "" {
			name = "celeriac"
		}
		c, err := redisurl.NewClient(cfg.URL, redisurl.Options{MasterName: cfg.MasterName, ClientName: name})
		if err != nil {
			return nil, fmt.Errorf("redis: Config.URL: %w", err)
		}
		b.client, b.ownClient = c, true
	}
	_, b.cluster = b.client.(*goredis.ClusterClient)
	if err := b.client.Ping(ctx).Err(); err != nil {
		if b.ownClient {
			_ = b.client.Close()
		}
		return nil, fmt.Errorf("redis: cannot reach %s: %w", b.describe(cfg), err)
	}
	b.hub = newHub(b, cfg.HealthCheck)
	return b, nil
}

func (b *Backend) describe(cfg Config) string {
	if cfg.Client != nil {
		return "the configured client"
	}
	return redisurl.Redact(cfg.URL)
}

// Client is the underlying client, for callers that keep their own keys
// in the same Redis (the worker's exactly-once guard). Do not close it.
func (b *Backend) Client() goredis.UniversalClient { return b.client }

// Close stops the waiters' pub/sub connection and, when the backend dialed
// it, closes the client. Waits in progress return ErrClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.hub.close()
	if b.ownClient {
		return b.client.Close()
	}
	return nil
}

func (b *Backend) check() error {
	if b.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Store writes meta as Celery 5.2.6 does — skip the write when the stored
// state is SUCCESS (a late duplicate never overwrites a result), otherwise
// SETEX key expires doc and PUBLISH key doc — but in one script: one round
// trip instead of Celery's two (GET, then MULTI/SETEX/PUBLISH/EXEC), and no
// window between the check and the write. A ready state without DateDone
// is stamped with the current time.
func (b *Backend) Store(ctx context.Context, meta *broker.ResultMeta) error {
	key, body, err := b.prepare(meta)
	if err != nil {
		return err
	}
	written, err := storeScript.Run(ctx, b.client, []string{key}, body, max(b.expires.Milliseconds(), 0)).Int()
	if err != nil {
		return fmt.Errorf("redis: store task %s: %w", meta.TaskID, err)
	}
	b.logKept(meta, written)
	return nil
}

// StoreAndRelease is Store fused with the release of an exactly-once lease
// held on this same Redis server (see lock.Lease.MarkAndUnlockWith): in
// one script it stores meta, sets markKey to mark for markTTL, and deletes
// lockKey if it still holds lockValue, which it reports.
func (b *Backend) StoreAndRelease(ctx context.Context, meta *broker.ResultMeta,
	lockKey, lockValue, markKey, mark string, markTTL time.Duration) (released bool, err error) {
	key, body, err := b.prepare(meta)
	if err != nil {
		return false, err
	}
	res, err := storeReleaseScript.Run(ctx, b.client, []string{key, lockKey, markKey},
		body, max(b.expires.Milliseconds(), 0), lockValue, mark, markTTL.Milliseconds()).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if err != nil {
		return false, fmt.Errorf("redis: store task %s: %w", meta.TaskID, err)
	}
	b.logKept(meta, int(res[0]))
	return res[1] == 1, nil
}

// prepare encodes meta for Store.
func (b *Backend) prepare(meta *broker.ResultMeta) (key string, body []byte, err error) {
	if err := b.check(); err != nil {
		return "", nil, err
	}
	if meta == nil || meta.TaskID == "" {
		return "", nil, errors.New("redis: Store needs a meta with a TaskID")
	}
	body, err = b.encode(metaDoc(meta, b.now()))
	if err != nil {
		return "", nil, fmt.Errorf("redis: result of task %s: %w", meta.TaskID, err)
	}
	if len(body) > maxValue {
		return "", nil, fmt.Errorf("redis: store task %s: %w", meta.TaskID, ErrTooLarge)
	}
	return TaskKey(meta.TaskID), body, nil
}

func (b *Backend) logKept(meta *broker.ResultMeta, written int) {
	if written == 0 {
		b.log.Debug("result already SUCCESS; not overwritten", "task_id", meta.TaskID, "state", string(meta.Status))
	}
}

// storeLua is Store's check-and-write as a Lua function of the result key,
// the document and its TTL in ms (0: none); it returns 1 when it wrote.
// The stored document is JSON or msgpack (result_serializer); one that
// neither decodes is overwritten, as Celery's own check would find no
// SUCCESS in it either.
const storeLua = `
local function store(key, body, ttl)
  local cur = redis.call('GET', key)
  if cur then
    local ok, doc = pcall(cjson.decode, cur)
    if not ok and cmsgpack then ok, doc = pcall(cmsgpack.unpack, cur) end
    if ok and type(doc) == 'table' and doc['status'] == 'SUCCESS' then return 0 end
  end
  if tonumber(ttl) > 0 then
    redis.call('SET', key, body, 'PX', ttl)
  else
    redis.call('SET', key, body)
  end
  redis.call('PUBLISH', key, body)
  return 1
end
`

var (
	// storeScript: KEYS result; ARGV document, TTL ms.
	storeScript = goredis.NewScript(storeLua + `return store(KEYS[1], ARGV[1], ARGV[2])`)
	// storeReleaseScript: KEYS result, lock, mark; ARGV document, TTL ms,
	// lock value, mark, mark TTL ms. Returns {written, released}.
	storeReleaseScript = goredis.NewScript(storeLua + `
local written = store(KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
local released = 0
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
  released = 1
end
return {written, released}`)
)

// StateKey is where a task's state is stored (TaskKey), so that a reader
// on the same Redis, such as the worker's exactly-once guard, can fetch it
// within its own script.
func (b *Backend) StateKey(taskID string) string { return TaskKey(taskID) }

// StateOf reads the state from a document stored at StateKey; ok is false
// when raw is not one.
func (b *Backend) StateOf(raw []byte) (broker.State, bool) { return statusOf(raw) }

// statusOf reads the status of a stored document.
func statusOf(raw []byte) (broker.State, bool) {
	v, _, err := decodeValue(raw)
	if err != nil {
		return "", false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	s, ok := m["status"].(string)
	return broker.State(s), ok
}

// set is Celery's RedisBackend._set: SETEX (or SET) and PUBLISH of the
// same bytes in one MULTI.
func (b *Backend) set(ctx context.Context, key string, body []byte) error {
	if len(body) > maxValue {
		return ErrTooLarge
	}
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		if b.expires > 0 {
			p.SetEx(ctx, key, body, b.expires)
		} else {
			p.Set(ctx, key, body, 0)
		}
		p.Publish(ctx, key, body)
		return nil
	})
	return err
}

// Get returns the stored state of a task; PENDING when nothing is stored.
func (b *Backend) Get(ctx context.Context, taskID string) (*broker.ResultMeta, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	raw, err := b.client.Get(ctx, TaskKey(taskID)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return &broker.ResultMeta{TaskID: taskID, Status: broker.StatePending}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis: get task %s: %w", taskID, err)
	}
	return decodeMeta(taskID, raw)
}

// Forget deletes the stored state of a task.
func (b *Backend) Forget(ctx context.Context, taskID string) error {
	if err := b.check(); err != nil {
		return err
	}
	if err := b.client.Del(ctx, TaskKey(taskID)).Err(); err != nil {
		return fmt.Errorf("redis: forget task %s: %w", taskID, err)
	}
	return nil
}

// Wait blocks until the task reaches a ready state (SUCCESS, FAILURE,
// REVOKED) or ctx ends. It subscribes to the task's channel on a pub/sub
// connection shared by all waiters and reads the key once the subscription
// is confirmed, so a state written before the call is seen too; after a
// reconnect it re-subscribes and reads again. It never polls.
func (b *Backend) Wait(ctx context.Context, taskID string) (*broker.ResultMeta, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	// Fast path: a finished task (the common case when a caller asks
	// later) needs one GET, no subscription.
	if raw, err := b.client.Get(ctx, TaskKey(taskID)).Bytes(); err == nil {
		if st, ok := statusOf(raw); ok && st.Ready() {
			return decodeMeta(taskID, raw)
		}
	}
	w, err := b.hub.add(TaskKey(taskID))
	if err != nil {
		return nil, err
	}
	defer b.hub.remove(w)
	select {
	case d := <-w.ch:
		if d.err != nil {
			return nil, d.err
		}
		return decodeMeta(taskID, d.raw)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.hub.done:
		return nil, ErrClosed
	}
}
