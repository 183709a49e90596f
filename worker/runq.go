package worker

import "sync"

// runQueue holds due tasks until a pool goroutine is free. It never blocks
// the pusher: the broker's prefetch limit already bounds how many messages
// can be waiting here.
type runQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []*job
	head   int
	closed bool
	w      *Worker
}

func newRunQueue(w *Worker) *runQueue {
	q := &runQueue{w: w}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push adds a job; after close the message goes straight back to the broker.
func (q *runQueue) push(j *job) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.w.requeue(j)
		return
	}
	q.items = append(q.items, j)
	q.mu.Unlock()
	q.cond.Signal()
}

// pop waits for a job; ok is false once the queue is closed.
func (q *runQueue) pop() (*job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, false
	}
	j := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return j, true
}

// len reports how many jobs wait for a slot.
func (q *runQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// snapshot lists the waiting jobs (for remote control's "reserved").
func (q *runQueue) snapshot() []*job {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]*job(nil), q.items[q.head:]...)
}

// close stops the queue and returns the jobs that never started to the
// broker, so another worker can run them now.
func (q *runQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	pending := q.items[q.head:]
	q.items, q.head = nil, 0
	q.mu.Unlock()
	q.cond.Broadcast()
	for _, j := range pending {
		q.w.requeue(j)
	}
}
