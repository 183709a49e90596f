package lock

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/internal/redisurl"
)

// Config configures a Locker. Zero fields take the defaults shown.
type Config struct {
	// Clients are the Redis deployments that hold the locks: one (a
	// server, a Sentinel-managed master or a Cluster), or several
	// independent masters for Redlock, where a lock needs a majority.
	Clients []goredis.UniversalClient
	// URLs are dialed (redis://, rediss://, unix://, sentinel://,
	// redis+cluster://) and appended to Clients; Close closes them.
	URLs []string
	// Prefix is prepended to every lock's key. Default "celeriac:lock:".
	Prefix string
	// Expiry is a lease's length unless WithExpiry says otherwise.
	// Default 8 s.
	Expiry time.Duration
	// RetryDelay bounds the random pause between Lock's attempts.
	// Default 250 ms (pauses are drawn from [RetryDelay/5, RetryDelay]).
	RetryDelay time.Duration
	// TokenTTL is how long a lock name's fencing counter outlives its last
	// acquisition. Tokens are monotonic while the counter lives, so keep it
	// longer than any holder could stay paused. Default 24 h; negative
	// keeps counters forever.
	TokenTTL time.Duration
	// Logger receives retries and lease losses; nil discards them.
	Logger *slog.Logger
}

// Locker hands out leases on named locks. It is safe for concurrent use.
type Locker struct {
	clients    []goredis.UniversalClient
	owned      []goredis.UniversalClient
	rs         *redsync.Redsync
	quorum     int
	prefix     string
	expiry     time.Duration
	retryDelay time.Duration
	tokenTTL   time.Duration
	log        *slog.Logger
	// plain: one Redis server behind a plain client (not Cluster, not
	// Sentinel, not N masters), where scripts may touch any key.
	plain bool
}

// New checks cfg and returns a Locker. It does not contact Redis.
func New(cfg Config) (*Locker, error) {
	l := &Locker{prefix: cfg.Prefix, expiry: cfg.Expiry, retryDelay: cfg.RetryDelay, tokenTTL: cfg.TokenTTL, log: cfg.Logger}
	for i, c := range cfg.Clients {
		if c == nil {
			return nil, fmt.Errorf("lock: Config.Clients[%d] is nil", i)
		}
	}
	l.clients = append(l.clients, cfg.Clients...)
	for i, u := range cfg.URLs {
		c, err := redisurl.NewClient(u, redisurl.Options{ClientName: "celeriac-lock"})
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("lock: Config.URLs[%d]: %w", i, err)
		}
		l.clients = append(l.clients, c)
		l.owned = append(l.owned, c)
	}
	if len(l.clients) == 0 {
		return nil, errors.New("lock: Config.Clients or Config.URLs must name at least one Redis")
	}
	l.plain = len(l.clients) == 1 && serverOf(l.clients[0]) != ""
	if l.prefix == "" {
		l.prefix = "celeriac:lock:"
	}
	if strings.ContainsAny(l.prefix, "{}") {
		l.Close()
		return nil, fmt.Errorf("lock: Config.Prefix %q must not contain braces (they are the lock's Cluster hash tag)", l.prefix)
	}
	switch {
	case l.expiry == 0:
		l.expiry = 8 * time.Second
	case l.expiry < 10*time.Millisecond:
		l.Close()
		return nil, fmt.Errorf("lock: Config.Expiry %v is too short (minimum 10ms)", l.expiry)
	}
	switch {
	case l.retryDelay == 0:
		l.retryDelay = 250 * time.Millisecond
	case l.retryDelay < 0:
		l.Close()
		return nil, errors.New("lock: Config.RetryDelay must not be negative")
	}
	if l.tokenTTL == 0 {
		l.tokenTTL = 24 * time.Hour
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	pools := make([]redsyncredis.Pool, 0, len(l.clients))
	for _, c := range l.clients {
		pools = append(pools, redsyncgoredis.NewPool(c))
	}
	l.rs = redsync.New(pools...)
	l.quorum = len(l.clients)/2 + 1
	return l, nil
}

// Close closes the clients New dialed from Config.URLs.
func (l *Locker) Close() error {
	var errs []error
	for _, c := range l.owned {
		errs = append(errs, c.Close())
	}
	l.owned = nil
	return errors.Join(errs...)
}

// SameServer reports whether c reaches the one Redis server (and database)
// this Locker uses, so that WithPeek may read c's keys. It is false with
// N masters, Cluster or Sentinel clients, where that cannot be known.
func (l *Locker) SameServer(c goredis.UniversalClient) bool {
	return l.plain && c != nil && serverOf(c) == serverOf(l.clients[0])
}

// serverOf names the server and database of a plain client; "" for any
// other kind (a Sentinel client's server changes with failovers).
func serverOf(c goredis.UniversalClient) string {
	pc, ok := c.(*goredis.Client)
	if !ok {
		return ""
	}
	o := pc.Options()
	if o.Addr == "" || o.Addr == "FailoverClient" {
		return ""
	}
	return fmt.Sprintf("%s %s %d", o.Network, o.Addr, o.DB)
}

// Option is a per-call setting of Lock and TryLock.
type Option func(*options)

type options struct {
	expiry  time.Duration
	noToken bool
	peek    string
}

// WithExpiry sets the lease's length (and the length of each Extend).
func WithExpiry(d time.Duration) Option { return func(o *options) { o.expiry = d } }

// WithoutToken skips issuing a fencing token (one round trip less per
// acquisition); Lease.Token is then 0.
func WithoutToken() Option { return func(o *options) { o.noToken = true } }

// WithPeek reads key in the same script that takes the lease, under it,
// when the Locker is one Redis server (not a Cluster, not N masters): a
// caller that checks a record before working saves a round trip. Elsewhere
// it is ignored and Lease.Peeked reports ok false. key must live on the
// Locker's server (see SameServer).
func WithPeek(key string) Option { return func(o *options) { o.peek = key } }

func (l *Locker) options(opts []Option) (options, error) {
	o := options{expiry: l.expiry}
	for _, f := range opts {
		f(&o)
	}
	if o.expiry < 10*time.Millisecond {
		return o, fmt.Errorf("lock: WithExpiry(%v) is too short (minimum 10ms)", o.expiry)
	}
	return o, nil
}

// key is the Redis key of a lock. The name sits in a Cluster hash tag so
// the lock and its fencing counter share a slot; braces and '%' in the
// name are escaped to keep the tag intact.
func (l *Locker) key(name string) string {
	esc := keyEscaper.Replace(name)
	return l.prefix + "{" + esc + "}"
}

// keyEscaper is built once: building a Replacer per call was a quarter of
// a guarded worker's allocations.
var keyEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func tokenKey(lockKey string) string { return lockKey + ":token" }

// TryLock makes one attempt to take the lock. When someone else holds it
// the error is a *TakenError (errors.Is ErrTaken) saying how long their
// lease still runs.
func (l *Locker) TryLock(ctx context.Context, name string, opts ...Option) (*Lease, error) {
	o, err := l.options(opts)
	if err != nil {
		return nil, err
	}
	lease, err := l.attempt(ctx, name, o)
	var te *TakenError
	if errors.As(err, &te) {
		te.RetryAfter = l.remaining(ctx, l.key(name), te.Nodes)
	}
	return lease, err
}

// Lock takes the lock, retrying after random pauses until it succeeds or
// ctx ends. Then the error wraps ctx.Err() and the last attempt's error.
func (l *Locker) Lock(ctx context.Context, name string, opts ...Option) (*Lease, error) {
	o, err := l.options(opts)
	if err != nil {
		return nil, err
	}
	var t *time.Timer
	for attempt := 1; ; attempt++ {
		lease, err := l.attempt(ctx, name, o)
		if err == nil {
			return lease, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("lock %q: %w (last attempt: %w)", name, ctx.Err(), err)
		}
		if !errors.Is(err, ErrTaken) && attempt&(attempt-1) == 0 {
			// Not contention: Redis is unreachable or refuses. Say so, at a
			// rate that halves as the failures go on.
			l.log.Warn("lock attempt failed; retrying", "lock", name, "attempt", attempt, "err", err)
		}
		lo := int64(l.retryDelay / 5)
		d := time.Duration(lo + rand.Int64N(int64(l.retryDelay)-lo+1))
		if t == nil {
			t = time.NewTimer(d)
			defer t.Stop()
		} else {
			t.Reset(d)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %q: %w (last attempt: %w)", name, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// attempt is one acquisition with its fencing token.
func (l *Locker) attempt(ctx context.Context, name string, o options) (*Lease, error) {
	if name == "" {
		return nil, errors.New("lock: empty lock name")
	}
	key := l.key(name)
	var (
		m     *redsync.Mutex
		until time.Time
		token uint64
		mark  *seenMark
		err   error
	)
	if len(l.clients) == 1 {
		m, until, token, mark, err = l.acquireOne(ctx, name, key, o)
	} else {
		m, until, token, err = l.acquireQuorum(ctx, name, key, o)
	}
	if err != nil {
		return nil, err
	}
	if !time.Now().Before(until) {
		l.release(m)
		return nil, fmt.Errorf("lock %q: %w (acquisition took longer than the lease)", name, ErrExpired)
	}
	lease := &Lease{l: l, name: name, key: key, m: m, token: token, expiry: o.expiry, mark: mark, done: make(chan struct{})}
	lease.start(until)
	return lease, nil
}

// acquireOne takes the lock and its token on a single Redis in one
// script, one round trip; redsync then renews and releases it.
func (l *Locker) acquireOne(ctx context.Context, name, key string, o options) (*redsync.Mutex, time.Time, uint64, *seenMark, error) {
	value, err := newValue()
	if err != nil {
		return nil, time.Time{}, 0, nil, err
	}
	withToken := "1"
	if o.noToken {
		withToken = "0"
	}
	start := time.Now()
	keys := []string{key, tokenKey(key), key + markSuffix}
	peek := o.peek != "" && l.plain
	if peek {
		keys = append(keys, o.peek)
	}
	res, err := acquireScript.Run(ctx, l.clients[0], keys,
		value, o.expiry.Milliseconds(), l.tokenTTLms(), withToken).Slice()
	if err != nil {
		return nil, time.Time{}, 0, nil, fmt.Errorf("lock %q: %w: %w", name, ErrNoQuorum, err)
	}
	v, _ := res[0].(int64)
	if v < 0 {
		return nil, time.Time{}, 0, nil, &TakenError{Name: name, Nodes: []int{0}}
	}
	mk := &seenMark{peekRead: peek}
	if len(res) > 1 {
		mk.value, mk.found = res[1].(string)
	}
	if peek && len(res) > 2 {
		mk.peek, mk.peekFound = res[2].(string)
	}
	m := l.rs.NewMutex(key, redsync.WithExpiry(o.expiry), redsync.WithTries(1), redsync.WithValue(value))
	return m, validity(start, o.expiry), uint64(v), mk, nil
}

// seenMark is a name's mark as read when its lease was taken.
type seenMark struct {
	value string
	found bool
	// WithPeek's key, when it was read.
	peek                string
	peekFound, peekRead bool
}

// validity is Redlock's: the lease's length from the start of the
// attempt, less 1% for clock drift.
func validity(start time.Time, expiry time.Duration) time.Time {
	return start.Add(expiry - expiry/100)
}

// acquireQuorum is Redlock over several masters, then the quorum token.
func (l *Locker) acquireQuorum(ctx context.Context, name, key string, o options) (*redsync.Mutex, time.Time, uint64, error) {
	// Not WithFailFast: returning at the first majority leaves SETNXs in
	// flight on the other servers, and one landing after the failed
	// attempt's release leaves a stray key for a whole lease; under
	// contention those strays kept every contender below a majority. A
	// server that hangs costs at most expiry × 5% (redsync's per-server
	// timeout); a dead one refuses at once.
	m := l.rs.NewMutex(key, redsync.WithExpiry(o.expiry), redsync.WithTries(1))
	if err := m.TryLockContext(ctx); err != nil {
		return nil, time.Time{}, 0, l.acquireError(name, err)
	}
	if o.noToken {
		return m, m.Until(), 0, nil
	}
	tok, err := l.fence(ctx, key, m.Value(), m.Until())
	if err != nil {
		l.release(m)
		return nil, time.Time{}, 0, fmt.Errorf("lock %q: fencing token: %w", name, err)
	}
	return m, m.Until(), tok, nil
}

func (l *Locker) tokenTTLms() int64 { return max(l.tokenTTL.Milliseconds(), 0) }

// newValue is a lease's random identity, as redsync makes them.
func newValue() (string, error) {
	b := make([]byte, 16)
	if _, err := crand.Read(b); err != nil {
		return "", fmt.Errorf("lock: random value: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// release gives the lock back after a failed attempt.
func (l *Locker) release(m *redsync.Mutex) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = m.UnlockContext(ctx)
}

// acquireError turns redsync's failure into ours: TakenError when any
// server refused because someone holds the lock, ErrNoQuorum when servers
// did not answer.
func (l *Locker) acquireError(name string, err error) error {
	var taken *redsync.ErrTaken
	if errors.As(err, &taken) {
		return &TakenError{Name: name, Nodes: taken.Nodes}
	}
	if errors.Is(err, redsync.ErrFailed) {
		return fmt.Errorf("lock %q: %w (acquisition took longer than the lease)", name, ErrExpired)
	}
	var nodes []int
	for _, e := range unjoin(err) {
		var nt *redsync.ErrNodeTaken
		if errors.As(e, &nt) {
			nodes = append(nodes, nt.Node)
		}
	}
	if len(nodes) > 0 {
		return &TakenError{Name: name, Nodes: nodes, Err: err}
	}
	return fmt.Errorf("lock %q: %w: %w", name, ErrNoQuorum, err)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// remaining is the largest PTTL of key on the given servers.
func (l *Locker) remaining(ctx context.Context, key string, nodes []int) time.Duration {
	var most time.Duration
	for _, n := range nodes {
		if n < 0 || n >= len(l.clients) {
			continue
		}
		if d, err := l.clients[n].PTTL(ctx, key).Result(); err == nil && d > most {
			most = d
		}
	}
	return most
}
