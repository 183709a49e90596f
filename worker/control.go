package worker

import (
	"context"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/celeriac/celeriac/broker"
)

// command is a decoded pidbox message.
type command struct {
	Method      string
	Arguments   map[string]any
	Destination []string
	Pattern     string
	Matcher     string
	Ticket      string
	ReplyTo     struct{ Exchange, RoutingKey string }
}

// control answers Celery's remote control: `celery inspect`, `celery
// control`, Flower and exporters see a celeriac worker as a Celery one.
type control struct {
	w        *Worker
	consumer broker.Consumer
	done     chan struct{}
}

func (c *control) start(ctx context.Context) error {
	for _, ex := range []broker.Exchange{broker.ControlExchange, broker.ReplyExchange} {
		if err := c.w.cfg.Broker.DeclareExchange(ctx, ex); err != nil {
			return fmt.Errorf("declare %s: %w", ex.Name, err)
		}
	}
	cons, err := c.w.cfg.Broker.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{broker.ControlQueue(c.w.hostname)}, NoAck: true, Tag: c.w.hostname + ".pidbox"})
	if err != nil {
		return err
	}
	c.consumer = cons
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		for d := range cons.Deliveries() {
			c.handle(d)
		}
	}()
	return nil
}

func (c *control) stop() {
	if c.consumer == nil {
		return
	}
	_ = c.consumer.Cancel(context.Background())
	<-c.done
}

func decodeCommand(m *broker.Message) (*command, error) {
	v, err := broker.Unmarshal(m.ContentType, m.Body)
	if err != nil {
		return nil, err
	}
	body, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("control message body is not a mapping")
	}
	cmd := &command{}
	cmd.Method, _ = body["method"].(string)
	cmd.Arguments, _ = body["arguments"].(map[string]any)
	if cmd.Arguments == nil {
		cmd.Arguments = map[string]any{}
	}
	if list, ok := body["destination"].([]any); ok {
		for _, d := range list {
			if s, ok := d.(string); ok {
				cmd.Destination = append(cmd.Destination, s)
			}
		}
	}
	cmd.Pattern, _ = body["pattern"].(string)
	cmd.Matcher, _ = body["matcher"].(string)
	cmd.Ticket, _ = body["ticket"].(string)
	if rt, ok := body["reply_to"].(map[string]any); ok {
		cmd.ReplyTo.Exchange, _ = rt["exchange"].(string)
		cmd.ReplyTo.RoutingKey, _ = rt["routing_key"].(string)
	}
	if cmd.Method == "" {
		return nil, fmt.Errorf("control message has no method")
	}
	return cmd, nil
}

// forMe applies kombu's destination/pattern matching.
func (c *control) forMe(cmd *command) bool {
	if len(cmd.Destination) > 0 {
		for _, d := range cmd.Destination {
			if d == c.w.hostname {
				return true
			}
		}
		return false
	}
	if cmd.Pattern != "" && cmd.Matcher != "" {
		switch cmd.Matcher {
		case "glob":
			ok, _ := path.Match(cmd.Pattern, c.w.hostname)
			return ok
		case "pcre":
			re, err := regexp.Compile(cmd.Pattern)
			return err == nil && re.MatchString(c.w.hostname)
		}
		return false
	}
	return true
}

func (c *control) handle(d *broker.Delivery) {
	cmd, err := decodeCommand(d.Message)
	if err != nil {
		c.w.log.Warn("ignoring a malformed control message", "error", err)
		return
	}
	if clk, ok := d.Message.Header("clock").(int64); ok {
		c.w.events.clock.adjust(clk)
	}
	if !c.forMe(cmd) {
		return
	}
	c.w.log.Debug("control command", "method", cmd.Method, "arguments", cmd.Arguments)
	reply, send := c.dispatch(cmd)
	if !send || cmd.Ticket == "" || cmd.ReplyTo.RoutingKey == "" {
		return
	}
	c.reply(cmd, reply)
}

func (c *control) reply(cmd *command, value any) {
	body, err := broker.MarshalJSON(map[string]any{c.w.hostname: value})
	if err != nil {
		body, _ = broker.MarshalJSON(map[string]any{c.w.hostname: map[string]any{"error": err.Error()}})
	}
	ex := cmd.ReplyTo.Exchange
	if ex == "" {
		ex = broker.ReplyExchange.Name
	}
	msg := &broker.Message{Body: body, ContentType: broker.ContentJSON, ContentEncoding: "utf-8",
		Headers:    map[string]any{"ticket": cmd.Ticket, "clock": c.w.events.clock.tick()},
		Properties: broker.Properties{DeliveryMode: 1}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.w.cfg.Broker.Publish(ctx, broker.Publishing{Exchange: ex, RoutingKey: cmd.ReplyTo.RoutingKey, Message: msg}); err != nil {
		c.w.log.Warn("sending a control reply failed", "method", cmd.Method, "error", err)
	}
}

func ok(v any) map[string]any  { return map[string]any{"ok": v} }
func nok(v any) map[string]any { return map[string]any{"error": v} }

// dispatch runs a command; send is false for commands that never reply.
func (c *control) dispatch(cmd *command) (reply any, send bool) {
	w, a := c.w, cmd.Arguments
	str := func(k string) string { s, _ := a[k].(string); return s }
	switch cmd.Method {
	case "ping":
		return ok("pong"), true
	case "active":
		return w.requestInfos(w.activeJobs(), a["safe"] == true), true
	case "reserved":
		return w.requestInfos(w.reservedJobs(), false), true
	case "scheduled":
		var out []any
		for _, j := range w.eta.snapshot() {
			out = append(out, map[string]any{"eta": broker.FormatTime(*j.t.ETA), "priority": int(j.t.Priority), "request": w.requestInfo(j, false)})
		}
		return orEmpty(out), true
	case "registered":
		return w.registeredInfo(a["taskinfoitems"]), true
	case "stats":
		return w.stats(), true
	case "revoked":
		return w.Revoked(), true
	case "active_queues":
		return w.activeQueues(), true
	case "conf":
		return w.conf(), true
	case "clock":
		return map[string]any{"clock": w.events.clock.tick()}, true
	case "revoke", "terminate":
		return c.revoke(cmd), true
	case "rate_limit":
		name, spec := str("task_name"), fmt.Sprint(a["rate_limit"])
		if a["rate_limit"] == nil {
			spec = ""
		}
		if w.lookup(name) == nil {
			return nok("unknown task"), true
		}
		if err := w.SetRateLimit(name, spec); err != nil {
			return nok(fmt.Sprintf("Invalid rate limit string: %v", err)), true
		}
		if lim, _ := ParseRate(spec); lim == 0 {
			return ok("rate limit disabled successfully"), true
		}
		return ok("new rate limit set successfully"), true
	case "time_limit":
		soft, _ := toSeconds(a["soft"])
		hard, _ := toSeconds(a["hard"])
		if err := w.SetTimeLimits(str("task_name"), soft, hard); err != nil {
			return nok("unknown task"), true
		}
		return ok("time limits set successfully"), true
	case "add_consumer":
		q := broker.TaskQueue(str("queue"))
		if ex := str("exchange"); ex != "" {
			q.Exchange = broker.Exchange{Name: ex, Kind: firstNonEmpty(str("exchange_type"), "direct"), Durable: true}
		}
		if rk := str("routing_key"); rk != "" {
			q.RoutingKey = rk
		}
		if err := w.AddQueue(context.Background(), q); err != nil {
			return nok(err.Error()), true
		}
		return ok("add consumer " + q.Name), true
	case "cancel_consumer":
		if err := w.CancelQueue(context.Background(), str("queue")); err != nil {
			return nok(err.Error()), true
		}
		return ok("no longer consuming from " + str("queue")), true
	case "enable_events":
		if w.events.enabled.Swap(true) {
			return ok("task events already enabled"), true
		}
		return ok("task events enabled"), true
	case "disable_events":
		if !w.events.enabled.Swap(false) {
			return ok("task events already disabled"), true
		}
		return ok("task events disabled"), true
	case "heartbeat":
		go w.events.heartbeat()
		return nil, true
	case "hello":
		if str("from_node") == w.hostname {
			return nil, false
		}
		if rev, ok := a["revoked"].(map[string]any); ok {
			ids := make([]string, 0, len(rev))
			for id := range rev {
				ids = append(ids, id)
			}
			w.revoked.add(w.now(), ids...)
		}
		ours := map[string]any{}
		for _, id := range w.Revoked() {
			ours[id] = []any{float64(w.now().Unix()), id}
		}
		return map[string]any{"revoked": ours, "clock": w.events.clock.tick()}, true
	case "shutdown":
		w.log.Warn("shutdown requested by remote control")
		w.requestShutdown()
		return nil, false
	}
	return nok(fmt.Sprintf("No such command: %q", cmd.Method)), true
}

func (c *control) revoke(cmd *command) map[string]any {
	var ids []string
	switch v := cmd.Arguments["task_id"].(type) {
	case string:
		ids = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				ids = append(ids, s)
			}
		}
	}
	terminate := cmd.Method == "terminate" || cmd.Arguments["terminate"] == true
	// Which ids are running is read before revoking: a terminated task
	// leaves the active set as soon as its context is cancelled.
	var hit []string
	for _, id := range ids {
		if _, ok := c.w.active.Load(id); ok {
			hit = append(hit, id)
		}
	}
	if err := c.w.Revoke(context.Background(), ids, terminate); err != nil {
		c.w.log.Warn("persisting a revocation failed", "error", err)
	}
	if terminate {
		if len(hit) == 0 {
			return ok("terminate: tasks unknown")
		}
		return ok("terminate: " + strings.Join(hit, ", "))
	}
	return ok(fmt.Sprintf("tasks %s flagged as revoked", strings.Join(ids, ", ")))
}

func toSeconds(v any) (time.Duration, bool) {
	var f float64
	if v == nil || broker.Convert(v, &f) != nil || f < 0 {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func orEmpty(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

// requestInfo is Celery's Request.info().
func (w *Worker) requestInfo(j *job, safe bool) map[string]any {
	var args, kwargs any = j.t.Args, j.t.Kwargs
	if safe {
		args, kwargs = argsRepr(j.t), kwargsRepr(j.t)
	}
	var start any
	if !j.started.IsZero() {
		start = float64(j.started.UnixNano()) / 1e9
	}
	return map[string]any{
		"id": j.t.ID, "name": j.t.Name, "args": args, "kwargs": kwargs, "type": j.t.Name,
		"hostname": w.hostname, "time_start": start, "acknowledged": j.earlyAcked || j.settled,
		"delivery_info": map[string]any{"exchange": j.d.Exchange, "routing_key": j.d.RoutingKey,
			"priority": int(j.t.Priority), "redelivered": j.d.Redelivered},
		"worker_pid": os.Getpid(),
	}
}

func (w *Worker) requestInfos(jobs []*job, safe bool) []any {
	out := make([]any, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, w.requestInfo(j, safe))
	}
	return out
}

func (w *Worker) activeJobs() []*job {
	var out []*job
	w.active.Range(func(_, v any) bool { out = append(out, v.(*job)); return true })
	sort.Slice(out, func(i, k int) bool { return out[i].started.Before(out[k].started) })
	return out
}

func (w *Worker) reservedJobs() []*job { return w.runq.snapshot() }

func (w *Worker) registeredInfo(items any) []any {
	want := map[string]bool{"exchange": true, "routing_key": true, "rate_limit": true}
	if list, ok := items.([]any); ok && len(list) > 0 {
		want = map[string]bool{}
		for _, x := range list {
			if s, ok := x.(string); ok {
				want[s] = true
			}
		}
	}
	var out []any
	for _, name := range w.TaskNames() {
		if strings.HasPrefix(name, "celery.") {
			continue
		}
		if rl := w.RateLimit(name); rl != "" && want["rate_limit"] {
			out = append(out, name+" [rate_limit="+rl+"]")
		} else {
			out = append(out, name)
		}
	}
	return orEmpty(out)
}

func (w *Worker) activeQueues() []any {
	var out []any
	for _, q := range w.Queues() {
		args := q.Args
		if args == nil {
			args = map[string]any{}
		}
		out = append(out, map[string]any{
			"name": q.Name, "routing_key": q.RoutingKey, "durable": q.Durable, "exclusive": q.Exclusive,
			"auto_delete": q.AutoDelete, "no_ack": false, "alias": nil, "queue_arguments": args,
			"binding_arguments": nil, "consumer_arguments": nil, "bindings": []any{},
			"expires": nil, "message_ttl": nil, "max_length": nil, "max_length_bytes": nil, "max_priority": args["x-max-priority"],
			"exchange": map[string]any{"name": q.Exchange.Name, "type": q.Exchange.Kind, "durable": q.Exchange.Durable,
				"auto_delete": q.Exchange.AutoDelete, "arguments": nil, "delivery_mode": nil, "passive": false},
		})
	}
	return orEmpty(out)
}

func (w *Worker) conf() map[string]any {
	queue := "celery"
	if w.cfg.DefaultQueue != "" {
		queue = w.cfg.DefaultQueue
	}
	return map[string]any{
		"worker_concurrency": w.cfg.Concurrency, "worker_prefetch_multiplier": w.cfg.PrefetchMultiplier,
		"task_default_queue": queue, "task_track_started": w.cfg.TrackStarted, "result_extended": w.cfg.ResultExtended,
		"task_serializer": w.cfg.Serializer, "accept_content": []any{"json", "msgpack"},
		"worker_send_task_events": w.events.enabled.Load(), "task_acks_late": true,
		"include": w.TaskNames(),
	}
}
