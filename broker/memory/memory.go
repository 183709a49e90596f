// Package memory is an in-process broker transport with RabbitMQ's
// semantics: exchanges (direct, topic, fanout), bindings, the default
// exchange, prefetch, acknowledgements, requeue with the redelivered flag,
// dead-lettering, priorities and per-message TTL.
//
// It exists for unit tests and examples: several connections to one named
// server behave like several processes sharing a broker, and closing a
// connection returns its unacknowledged messages to their queues, as a
// crashed worker's would be.
//
//	b, _ := broker.Open(ctx, "memory://test-"+t.Name(), broker.Options{})
package memory

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/celeriac/celeriac/broker"
)

func init() {
	broker.Register(func(ctx context.Context, urls []string, opts broker.Options) (broker.Broker, error) {
		u, err := url.Parse(urls[0])
		if err != nil {
			return nil, err
		}
		return NamedServer(u.Host + u.Path).Connect(), nil
	}, "memory")
}

var (
	serversMu sync.Mutex
	servers   = map[string]*Server{}
)

// NamedServer returns the process-wide server of that name, creating it.
// URLs memory://NAME open connections to it.
func NamedServer(name string) *Server {
	serversMu.Lock()
	defer serversMu.Unlock()
	s, ok := servers[name]
	if !ok {
		s = NewServer()
		servers[name] = s
	}
	return s
}

// Server holds the broker state shared by its connections.
type Server struct {
	mu        sync.Mutex
	exchanges map[string]broker.Exchange
	queues    map[string]*queue
	changed   chan struct{} // closed and replaced whenever state changes
	wg        sync.WaitGroup
	stop      chan struct{}
	seq       uint64
	now       func() time.Time
}

// NewServer returns an empty server.
func NewServer() *Server {
	return &Server{
		exchanges: map[string]broker.Exchange{},
		queues:    map[string]*queue{},
		changed:   make(chan struct{}),
		stop:      make(chan struct{}),
		now:       time.Now,
	}
}

type queue struct {
	decl     broker.Queue
	ready    []*entry
	bindings []binding // bindings of this queue, for inspection
	consumer int
}

type binding struct {
	exchange, key string
}

type entry struct {
	msg         *broker.Message
	exchange    string
	routingKey  string
	redelivered bool
	enqueued    time.Time
	seq         uint64
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Connect opens a new connection (a broker.Broker) to the server.
func (s *Server) Connect() *Conn {
	return &Conn{srv: s, unacked: map[*ack]struct{}{}, done: make(chan struct{})}
}

// Shutdown stops the server's delayed-delivery timers. Queued messages are
// dropped with the server.
func (s *Server) Shutdown() {
	s.mu.Lock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) declareExchangeLocked(ex broker.Exchange) error {
	if ex.Name == "" {
		return nil
	}
	if old, ok := s.exchanges[ex.Name]; ok {
		if old.Kind != ex.Kind || old.Durable != ex.Durable || old.AutoDelete != ex.AutoDelete {
			return &broker.DeclareMismatchError{Name: ex.Name, Err: fmt.Errorf("exchange declared as %s/durable=%v/auto_delete=%v", old.Kind, old.Durable, old.AutoDelete)}
		}
		return nil
	}
	if ex.Kind == "" {
		ex.Kind = "direct"
	}
	s.exchanges[ex.Name] = ex
	return nil
}

func sameArgs(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if fmt.Sprint(b[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

func (s *Server) declareLocked(q broker.Queue) error {
	if q.Name == "" {
		return fmt.Errorf("memory: queue name is empty")
	}
	if err := s.declareExchangeLocked(q.Exchange); err != nil {
		return err
	}
	old, ok := s.queues[q.Name]
	if ok {
		if old.decl.Durable != q.Durable || old.decl.AutoDelete != q.AutoDelete || !sameArgs(old.decl.Args, q.Args) {
			return &broker.DeclareMismatchError{Name: q.Name, Err: fmt.Errorf("queue declared with durable=%v auto_delete=%v args=%v", old.decl.Durable, old.decl.AutoDelete, old.decl.Args)}
		}
	} else {
		old = &queue{decl: q}
		s.queues[q.Name] = old
	}
	if q.Exchange.Name != "" {
		b := binding{exchange: q.Exchange.Name, key: q.RoutingKey}
		for _, have := range old.bindings {
			if have == b {
				return nil
			}
		}
		old.bindings = append(old.bindings, b)
	}
	return nil
}

// route returns the queues a publish reaches.
func (s *Server) routeLocked(exchange, rk string) []*queue {
	if exchange == "" {
		if q, ok := s.queues[rk]; ok {
			return []*queue{q}
		}
		return nil
	}
	ex, ok := s.exchanges[exchange]
	if !ok {
		return nil
	}
	var out []*queue
	names := make([]string, 0, len(s.queues))
	for n := range s.queues {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		q := s.queues[n]
		for _, b := range q.bindings {
			if b.exchange != exchange {
				continue
			}
			if ex.Kind == "fanout" || (ex.Kind == "topic" && topicMatch(b.key, rk)) || (ex.Kind != "topic" && b.key == rk) {
				out = append(out, q)
				break
			}
		}
	}
	return out
}

// topicMatch implements AMQP topic matching: words split by '.', '*'
// matches one word, '#' zero or more.
func topicMatch(pattern, key string) bool {
	return matchWords(strings.Split(pattern, "."), strings.Split(key, "."))
}

func matchWords(p, k []string) bool {
	for len(p) > 0 {
		switch p[0] {
		case "#":
			for i := 0; i <= len(k); i++ {
				if matchWords(p[1:], k[i:]) {
					return true
				}
			}
			return false
		case "*":
			if len(k) == 0 {
				return false
			}
		default:
			if len(k) == 0 || k[0] != p[0] {
				return false
			}
		}
		p, k = p[1:], k[1:]
	}
	return len(k) == 0
}

func (s *Server) publishLocked(p broker.Publishing) error {
	qs := s.routeLocked(p.Exchange, p.RoutingKey)
	if len(qs) == 0 {
		return nil // unroutable messages are dropped, as AMQP does without mandatory
	}
	for _, q := range qs {
		s.seq++
		m := p.Message.Clone()
		q.ready = append(q.ready, &entry{msg: m, exchange: p.Exchange, routingKey: p.RoutingKey, enqueued: s.now(), seq: s.seq})
	}
	s.notifyLocked()
	return nil
}

// maxPriority returns the queue's x-max-priority, or 0.
func (q *queue) maxPriority() int {
	switch v := q.decl.Args["x-max-priority"].(type) {
	case int:
		return v
	case int64:
		return int(v)
	case int32:
		return int(v)
	}
	return 0
}

func ttl(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// popLocked takes the next deliverable entry from q, dropping (or
// dead-lettering) expired ones.
func (s *Server) popLocked(q *queue) *entry {
	for len(q.ready) > 0 {
		idx := 0
		if max := q.maxPriority(); max > 0 {
			best := -1
			for i, e := range q.ready {
				pr := min(int(e.msg.Properties.Priority), max)
				if pr > best {
					best, idx = pr, i
				}
			}
		}
		e := q.ready[idx]
		q.ready = append(q.ready[:idx], q.ready[idx+1:]...)
		if s.expiredLocked(q, e) {
			s.deadLetterLocked(q, e)
			continue
		}
		return e
	}
	return nil
}

func (s *Server) expiredLocked(q *queue, e *entry) bool {
	age := s.now().Sub(e.enqueued)
	if d, ok := ttl(e.msg.Properties.Expiration); ok && age >= d {
		return true
	}
	if v, ok := q.decl.Args["x-message-ttl"]; ok {
		if d, ok := ttl(fmt.Sprint(v)); ok && age >= d {
			return true
		}
	}
	return false
}

func (s *Server) deadLetterLocked(q *queue, e *entry) {
	dlx, ok := q.decl.Args["x-dead-letter-exchange"].(string)
	if !ok {
		return
	}
	rk := e.routingKey
	if k, ok := q.decl.Args["x-dead-letter-routing-key"].(string); ok {
		rk = k
	}
	_ = s.publishLocked(broker.Publishing{Exchange: dlx, RoutingKey: rk, Message: e.msg})
}
