package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/redistest"
	"github.com/celeriac/celeriac/internal/testenv"
)

func success(id string, v any) *broker.ResultMeta {
	return &broker.ResultMeta{TaskID: id, Status: broker.StateSuccess, Result: v}
}

// waitSubscribed polls PUBSUB NUMSUB until every key has n subscribers.
func waitSubscribed(t *testing.T, c goredis.UniversalClient, n int64, keys ...string) {
	t.Helper()
	err := redistest.Eventually(10*time.Second, func() error {
		for len(keys) > 0 {
			batch := keys[:min(len(keys), 200)]
			got, err := c.PubSubNumSub(context.Background(), batch...).Result()
			if err != nil {
				return err
			}
			for _, k := range batch {
				if got[k] != n {
					return fmt.Errorf("%s has %d subscribers, want %d", k, got[k], n)
				}
			}
			keys = keys[len(batch):]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWaitStoredBefore(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{})
	ctx := testCtx(t, 10*time.Second)
	id := newID(t)
	if err := b.Store(ctx, success(id, "early")); err != nil {
		t.Fatal(err)
	}
	m, err := b.Wait(ctx, id)
	if err != nil || m.Result != "early" {
		t.Fatalf("Wait = %+v, %v", m, err)
	}
}

// TestWaitSkipsUnready checks that STARTED and RETRY are not returned and
// that the published SUCCESS wakes the waiter.
func TestWaitSkipsUnready(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{})
	ctx := testCtx(t, 10*time.Second)
	id := newID(t)
	if err := b.Store(ctx, &broker.ResultMeta{TaskID: id, Status: broker.StateStarted}); err != nil {
		t.Fatal(err)
	}
	res := make(chan *broker.ResultMeta, 1)
	go func() {
		m, err := b.Wait(ctx, id)
		if err != nil {
			t.Error(err)
		}
		res <- m
	}()
	waitSubscribed(t, b.Client(), 1, TaskKey(id))
	for _, st := range []broker.State{broker.StateRetry, broker.StateStarted, broker.StateSuccess} {
		if err := b.Store(ctx, &broker.ResultMeta{TaskID: id, Status: st, Result: string(st)}); err != nil {
			t.Fatal(err)
		}
	}
	if m := <-res; m == nil || m.Status != broker.StateSuccess || m.Result != "SUCCESS" {
		t.Fatalf("Wait returned %+v", m)
	}
	// The last waiter gone, the key is unsubscribed.
	waitSubscribed(t, b.Client(), 0, TaskKey(id))
}

func TestWaitContext(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := b.Wait(ctx, newID(t))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want DeadlineExceeded", err)
	}
	// AsyncResult turns it into ErrResultTimeout.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	_, err = broker.NewAsyncResult(newID(t), b).Get(ctx2)
	if !errors.Is(err, broker.ErrResultTimeout) {
		t.Errorf("AsyncResult.Get = %v, want ErrResultTimeout", err)
	}
}

func TestWaitClosed(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{})
	ctx := testCtx(t, 10*time.Second)
	id := newID(t)
	errc := make(chan error, 1)
	go func() { _, err := b.Wait(ctx, id); errc <- err }()
	waitSubscribed(t, b.Client(), 1, TaskKey(id))
	b.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close = %v", err)
	}
}

// pubsubConns lists CLIENT LIST entries named name that hold subscriptions.
func pubsubConns(t *testing.T, c goredis.UniversalClient, name string) []string {
	t.Helper()
	list, err := c.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+name+" ") || strings.Contains(line, " sub=0 ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// TestWaitMany runs 500 concurrent waiters (plus three on one task) over
// one pub/sub connection; half the states exist before Wait, half are
// stored while waiting.
func TestWaitMany(t *testing.T) {
	t.Parallel()
	name := testenv.Prefix(t)
	b := newBackend(t, Config{ClientName: name})
	ctx := testCtx(t, 60*time.Second)
	const n = 500
	ids := make([]string, n)
	keys := make([]string, 0, n)
	for i := range ids {
		ids[i] = newID(t)
		if i%2 == 0 {
			if err := b.Store(ctx, success(ids[i], int64(i))); err != nil {
				t.Fatal(err)
			}
		} else {
			keys = append(keys, TaskKey(ids[i]))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, n+3)
	wait := func(i int) {
		defer wg.Done()
		m, err := b.Wait(ctx, ids[i])
		switch {
		case err != nil:
			errs <- err
		case m.Result != int64(i):
			errs <- fmt.Errorf("task %d: got %v", i, m.Result)
		}
	}
	for i := range ids {
		wg.Add(1)
		go wait(i)
	}
	for range 3 {
		wg.Add(1)
		go wait(1)
	}
	waitSubscribed(t, b.Client(), 1, keys...)
	if got := pubsubConns(t, b.Client(), name); len(got) != 1 {
		t.Errorf("%d pub/sub connections for 500 waiters, want 1", len(got))
	}
	for i := 1; i < n; i += 2 {
		if err := b.Store(ctx, success(ids[i], int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitSubscribed(t, b.Client(), 0, keys...)
}

// TestWaitAfterClientKill kills the shared pub/sub connection with CLIENT
// KILL; the waiters re-subscribe on a new connection and still get their
// results.
func TestWaitAfterClientKill(t *testing.T) {
	t.Parallel()
	name := testenv.Prefix(t)
	b := newBackend(t, Config{ClientName: name})
	ctx := testCtx(t, 30*time.Second)
	ids := []string{newID(t), newID(t), newID(t)}
	res := make(chan error, len(ids))
	for i, id := range ids {
		go func() {
			m, err := b.Wait(ctx, id)
			if err == nil && m.Result != int64(i) {
				err = fmt.Errorf("got %v", m.Result)
			}
			res <- err
		}()
	}
	keys := []string{TaskKey(ids[0]), TaskKey(ids[1]), TaskKey(ids[2])}
	waitSubscribed(t, b.Client(), 1, keys...)
	before := pubsubConns(t, b.Client(), name)
	if len(before) != 1 {
		t.Fatalf("pub/sub connections: %v", before)
	}
	if err := b.Client().Do(ctx, "CLIENT", "KILL", "ID", before[0]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(ctx, success(ids[0], int64(0))); err != nil { // maybe while reconnecting
		t.Fatal(err)
	}
	waitSubscribed(t, b.Client(), 1, keys[1:]...)
	after := pubsubConns(t, b.Client(), name)
	if len(after) != 1 || after[0] == before[0] {
		t.Errorf("pub/sub connection %v after killing %v", after, before)
	}
	for i := 1; i < len(ids); i++ {
		if err := b.Store(ctx, success(ids[i], int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	for range ids {
		if err := <-res; err != nil {
			t.Error(err)
		}
	}
}

// TestWaitAcrossOutage cuts the connection to Redis, stores the results
// while the waiters cannot hear the PUBLISH, then lets them reconnect: the
// GET after re-subscribing must find the results.
func TestWaitAcrossOutage(t *testing.T) {
	t.Parallel()
	direct := newBackend(t, Config{})
	px := startProxy(t, strings.TrimPrefix(strings.TrimSuffix(testenv.RedisURL(t), "/0"), "redis://"))
	b := newBackend(t, Config{URL: "redis://" + px.addr() + "/0", HealthCheck: time.Second})
	ctx := testCtx(t, 30*time.Second)
	ids := []string{newID(t), newID(t)}
	res := make(chan error, len(ids))
	for i, id := range ids {
		go func() {
			m, err := b.Wait(ctx, id)
			if err == nil && m.Result != int64(i) {
				err = fmt.Errorf("got %v", m.Result)
			}
			res <- err
		}()
	}
	keys := []string{TaskKey(ids[0]), TaskKey(ids[1])}
	waitSubscribed(t, direct.Client(), 1, keys...)
	px.setDown(true)
	waitSubscribed(t, direct.Client(), 0, keys...)
	for i, id := range ids {
		if err := direct.Store(ctx, success(id, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	px.setDown(false)
	for range ids {
		if err := <-res; err != nil {
			t.Error(err)
		}
	}
}

// TestWaitHalfDeadConnection: the pub/sub connection stays open but
// nothing gets through any more (a silent network failure, the case where
// Celery's workers are known to hang). The health check's unanswered ping
// replaces the connection, and the waiter gets its result.
func TestWaitHalfDeadConnection(t *testing.T) {
	t.Parallel()
	direct := newBackend(t, Config{})
	px := startProxy(t, strings.TrimPrefix(strings.TrimSuffix(testenv.RedisURL(t), "/0"), "redis://"))
	// The freeze also silences the pooled command connections; a short
	// socket timeout lets the GET after re-subscribing move to a new one.
	b := newBackend(t, Config{URL: "redis://" + px.addr() + "/0?socket_timeout=0.5", HealthCheck: 200 * time.Millisecond})
	ctx := testCtx(t, 30*time.Second)
	id := newID(t)
	res := make(chan error, 1)
	go func() {
		m, err := b.Wait(ctx, id)
		if err == nil && m.Result != "late" {
			err = fmt.Errorf("got %v", m.Result)
		}
		res <- err
	}()
	waitSubscribed(t, direct.Client(), 1, TaskKey(id))
	px.freeze() // existing connections go silent; new ones work
	if err := direct.Store(ctx, success(id, "late")); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}

// proxy is a TCP relay the test can cut: setDown(true) drops every
// connection and refuses new ones; freeze makes the current connections
// silently drop everything.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
	frozen map[net.Conn]bool
	wg     sync.WaitGroup
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		p.frozen[c] = true
	}
}

func (p *proxy) isFrozen(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen[c]
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, frozen: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			defer dst.Close()
			defer src.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 && !p.isFrozen(src) {
					if _, werr := dst.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}
		go pipe(s, c)
		go pipe(c, s)
	}
}

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}
