package redis

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// hub multiplexes every Wait of a Backend over one pub/sub connection.
//
// Three goroutines, started by the first Wait:
//   - recv reads the connection: a published state wakes the key's waiters,
//     a subscribe confirmation queues a GET of the key;
//   - sync sends SUBSCRIBE/UNSUBSCRIBE so that the server's subscriptions
//     follow the set of keys with waiters, in the order the set changed;
//   - fetch GETs queued keys in pipelined batches.
//
// The GET after the confirmation is what makes Wait correct: a state
// written before the server processed SUBSCRIBE is read by the GET, one
// written after is published to us. go-redis re-subscribes after a
// reconnect, and those confirmations queue GETs again, so a state published
// while the connection was down is not missed either.
type hub struct {
	b      *Backend
	health time.Duration

	mu       sync.Mutex
	started  bool
	closed   bool
	ps       *goredis.PubSub
	keys     map[string]*keyState
	dirty    map[string]struct{} // keys whose waiter set changed since the last sync
	fetchQ   map[string]struct{} // keys to GET
	syncSig  chan struct{}
	fetchSig chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed by close()
	wg     sync.WaitGroup
}

type keyState struct {
	waiters   map[*waiter]struct{}
	sent      bool // SUBSCRIBE sent on the current connection
	confirmed bool // a subscribe confirmation arrived since it was sent
}

type waiter struct {
	key string
	ch  chan delivery // buffered: the hub never blocks on a waiter
}

type delivery struct {
	raw []byte
	err error
}

func newHub(b *Backend, health time.Duration) *hub {
	h := &hub{
		b: b, health: health,
		keys: map[string]*keyState{}, dirty: map[string]struct{}{}, fetchQ: map[string]struct{}{},
		syncSig: make(chan struct{}, 1), fetchSig: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (h *hub) startLocked() {
	if h.started {
		return
	}
	h.started = true
	h.ps = h.b.client.Subscribe(h.ctx)
	h.wg.Add(3)
	go h.recvLoop()
	go h.syncLoop()
	go h.fetchLoop()
}

// add registers a waiter for key.
func (h *hub) add(key string) (*waiter, error) {
	w := &waiter{key: key, ch: make(chan delivery, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	h.startLocked()
	ks := h.keys[key]
	if ks == nil {
		ks = &keyState{waiters: map[*waiter]struct{}{}}
		h.keys[key] = ks
	}
	ks.waiters[w] = struct{}{}
	switch {
	case !ks.sent:
		h.dirty[key] = struct{}{}
		signal(h.syncSig)
	case ks.confirmed:
		// Already subscribed: read now in case the state was written
		// before this waiter came.
		h.fetchQ[key] = struct{}{}
		signal(h.fetchSig)
	}
	return w, nil
}

// remove unregisters a waiter; the last one of a key unsubscribes it.
func (h *hub) remove(w *waiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ks := h.keys[w.key]
	if ks == nil {
		return
	}
	delete(ks.waiters, w)
	if len(ks.waiters) == 0 {
		h.dirty[w.key] = struct{}{}
		signal(h.syncSig)
	}
}

// deliver hands a ready state of key to all its waiters.
func (h *hub) deliver(key string, raw []byte) {
	st, ok := statusOf(raw)
	var err error
	if !ok {
		// A document nobody can decode will not become ready by waiting:
		// tell the waiters rather than leave them hanging.
		_, err = decodeMeta(key[len(TaskKeyPrefix):], raw)
		if err == nil {
			return
		}
		h.b.log.Warn("undecodable result document", "key", key, "err", err)
	} else if !st.Ready() {
		return // STARTED, RETRY, …: keep waiting
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ks := h.keys[key]
	if ks == nil {
		return
	}
	for w := range ks.waiters {
		w.ch <- delivery{raw: raw, err: err}
		delete(ks.waiters, w)
	}
	h.dirty[key] = struct{}{}
	signal(h.syncSig)
}

func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.done)
	h.cancel()
	ps := h.ps
	h.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
	h.wg.Wait()
}

// syncLoop makes the server's subscriptions follow the keys with waiters.
func (h *hub) syncLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.syncSig:
		}
		var sub, unsub []string
		h.mu.Lock()
		for key := range h.dirty {
			ks := h.keys[key]
			if ks == nil {
				continue
			}
			switch {
			case len(ks.waiters) > 0 && !ks.sent:
				ks.sent, ks.confirmed = true, false
				sub = append(sub, key)
			case len(ks.waiters) == 0:
				if ks.sent {
					unsub = append(unsub, key)
				}
				delete(h.keys, key)
			}
		}
		clear(h.dirty)
		ps := h.ps
		h.mu.Unlock()
		// Errors need no handling here: go-redis records the channels
		// before writing, and re-subscribes them when it reconnects.
		if len(unsub) > 0 {
			if err := ps.Unsubscribe(h.ctx, unsub...); err != nil && h.ctx.Err() == nil {
				h.b.log.Debug("unsubscribe failed; will resync on reconnect", "err", err)
			}
		}
		for len(sub) > 0 {
			n := min(len(sub), 512)
			if err := ps.Subscribe(h.ctx, sub[:n]...); err != nil && h.ctx.Err() == nil {
				h.b.log.Debug("subscribe failed; will resubscribe on reconnect", "err", err)
			}
			sub = sub[n:]
		}
	}
}

// recvLoop reads the pub/sub connection until the hub closes.
func (h *hub) recvLoop() {
	defer h.wg.Done()
	backoff := newBackoff(50*time.Millisecond, 2*time.Second)
	pinged := false
	for {
		h.mu.Lock()
		ps := h.ps
		h.mu.Unlock()
		msg, err := ps.ReceiveTimeout(h.ctx, h.health)
		if h.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if pinged {
					h.b.log.Warn("result pub/sub connection silent after a ping; replacing it")
					h.replace()
					pinged = false
					continue
				}
				_ = ps.Ping(h.ctx)
				pinged = true
				continue
			}
			// go-redis reconnects and re-subscribes on the next receive;
			// back off so a server that is down is not hammered.
			h.b.log.Warn("result pub/sub connection lost; reconnecting", "err", err)
			pinged = false
			if !backoff.wait(h.ctx) {
				return
			}
			continue
		}
		backoff.reset()
		pinged = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				h.confirmed(m.Channel)
			}
		case *goredis.Message:
			h.deliver(m.Channel, []byte(m.Payload))
		}
	}
}

// confirmed marks key subscribed and queues a GET for its waiters.
func (h *hub) confirmed(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ks := h.keys[key]
	if ks == nil || !ks.sent {
		return
	}
	ks.confirmed = true
	if len(ks.waiters) > 0 {
		h.fetchQ[key] = struct{}{}
		signal(h.fetchSig)
	}
}

// replace swaps a dead-looking pub/sub connection for a new one and
// subscribes every waited-for key on it.
func (h *hub) replace() {
	h.mu.Lock()
	old := h.ps
	h.ps = h.b.client.Subscribe(h.ctx)
	for key, ks := range h.keys {
		ks.sent, ks.confirmed = false, false
		h.dirty[key] = struct{}{}
	}
	signal(h.syncSig)
	h.mu.Unlock()
	_ = old.Close()
}

// fetchLoop GETs queued keys in pipelined batches.
func (h *hub) fetchLoop() {
	defer h.wg.Done()
	backoff := newBackoff(50*time.Millisecond, 2*time.Second)
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.fetchSig:
		}
		for {
			h.mu.Lock()
			keys := make([]string, 0, min(len(h.fetchQ), 256))
			for k := range h.fetchQ {
				if len(keys) == cap(keys) {
					break
				}
				keys = append(keys, k)
				delete(h.fetchQ, k)
			}
			h.mu.Unlock()
			if len(keys) == 0 {
				break
			}
			if err := h.fetch(keys); err != nil {
				if h.ctx.Err() != nil {
					return
				}
				h.b.log.Warn("reading results for waiters failed; retrying", "err", err)
				h.mu.Lock()
				for _, k := range keys {
					h.fetchQ[k] = struct{}{}
				}
				h.mu.Unlock()
				if !backoff.wait(h.ctx) {
					return
				}
				continue
			}
			backoff.reset()
		}
	}
}

func (h *hub) fetch(keys []string) error {
	cmds := make([]*goredis.StringCmd, len(keys))
	_, _ = h.b.client.Pipelined(h.ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(h.ctx, k)
		}
		return nil
	})
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return err
		}
	}
	for i, c := range cmds {
		if raw, err := c.Bytes(); err == nil {
			h.deliver(keys[i], raw)
		}
	}
	return nil
}

// backoff is a capped exponential delay between retries.
type backoff struct {
	min, max, cur time.Duration
	t             *time.Timer
}

func newBackoff(lo, hi time.Duration) *backoff { return &backoff{min: lo, max: hi, cur: lo} }

func (b *backoff) reset() { b.cur = b.min }

// wait sleeps for the current delay; false when ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	if b.t == nil {
		b.t = time.NewTimer(b.cur)
	} else {
		b.t.Reset(b.cur)
	}
	b.cur = min(b.cur*2, b.max)
	select {
	case <-ctx.Done():
		b.t.Stop()
		return false
	case <-b.t.C:
		return true
	}
}
