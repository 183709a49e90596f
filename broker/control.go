package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Celery's event and remote-control ("pidbox") entities, declared exactly
// as Celery and kombu declare them.
var (
	// EventExchange carries worker and task events (a topic exchange; the
	// Redis transport treats it as fanout, as kombu does).
	EventExchange = Exchange{Name: "celeryev", Kind: "topic", Durable: true}
	// ControlExchange carries commands to every worker.
	ControlExchange = Exchange{Name: "celery.pidbox", Kind: "fanout"}
	// ReplyExchange carries replies back to the client that asked.
	ReplyExchange = Exchange{Name: "reply.celery.pidbox", Kind: "direct"}
)

// ControlQueue is a worker's command queue: "<node>.celery.pidbox".
func ControlQueue(hostname string) Queue {
	return Queue{
		Name: hostname + ".celery.pidbox", Exchange: ControlExchange, AutoDelete: true,
		Args: map[string]any{"x-message-ttl": 300000, "x-expires": 10000},
	}
}

// ReplyQueue is a control client's reply queue: "<oid>.reply.celery.pidbox".
func ReplyQueue(oid string) Queue {
	return Queue{
		Name: oid + ".reply.celery.pidbox", Exchange: ReplyExchange, RoutingKey: oid, AutoDelete: true,
		Args: map[string]any{"x-expires": 10000},
	}
}

// Control sends remote-control commands the way `celery inspect` and
// `celery control` do, and collects the replies.
type Control struct {
	b   Broker
	oid string
}

// NewControl returns a control client on b.
func NewControl(b Broker) *Control { return &Control{b: b, oid: uuid.NewString()} }

// Cast sends a command without waiting for replies (e.g. revoke).
func (c *Control) Cast(ctx context.Context, method string, args map[string]any, destination []string) error {
	return c.send(ctx, method, args, destination, "", 0)
}

// Call sends a command and collects replies until timeout, or until every
// node in destination has answered. The result maps node name to reply.
func (c *Control) Call(ctx context.Context, method string, args map[string]any, destination []string, timeout time.Duration) (map[string]any, error) {
	if err := c.b.DeclareExchange(ctx, ReplyExchange); err != nil {
		return nil, err
	}
	cons, err := c.b.Consume(ctx, ConsumeOptions{Queues: []Queue{ReplyQueue(c.oid)}, NoAck: true})
	if err != nil {
		return nil, err
	}
	defer cons.Cancel(context.Background())
	ticket := uuid.NewString()
	if err := c.send(ctx, method, args, destination, ticket, timeout); err != nil {
		return nil, err
	}
	replies := map[string]any{}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case d, ok := <-cons.Deliveries():
			if !ok {
				return replies, nil
			}
			if t, _ := d.Message.Header("ticket").(string); t != ticket {
				continue
			}
			v, err := Unmarshal(d.Message.ContentType, d.Message.Body)
			if err != nil {
				continue
			}
			if m, ok := v.(map[string]any); ok {
				for node, r := range m {
					replies[node] = r
				}
			}
			if len(destination) > 0 && len(replies) >= len(destination) {
				return replies, nil
			}
		case <-deadline.C:
			return replies, nil
		case <-ctx.Done():
			return replies, ctx.Err()
		}
	}
}

func (c *Control) send(ctx context.Context, method string, args map[string]any, destination []string, ticket string, timeout time.Duration) error {
	if err := c.b.DeclareExchange(ctx, ControlExchange); err != nil {
		return err
	}
	if args == nil {
		args = map[string]any{}
	}
	var dest any
	if len(destination) > 0 {
		l := make([]any, len(destination))
		for i, d := range destination {
			l[i] = d
		}
		dest = l
	}
	body := map[string]any{"method": method, "arguments": args, "destination": dest, "pattern": nil, "matcher": nil}
	if ticket != "" {
		body["ticket"] = ticket
		body["reply_to"] = map[string]any{"exchange": ReplyExchange.Name, "routing_key": c.oid}
	}
	b, err := MarshalJSON(body)
	if err != nil {
		return err
	}
	msg := &Message{Body: b, ContentType: ContentJSON, ContentEncoding: "utf-8",
		Headers:    map[string]any{"clock": 1, "expires": float64(time.Now().Add(timeout).UnixNano()) / 1e9},
		Properties: Properties{DeliveryMode: 2}}
	if err := c.b.Publish(ctx, Publishing{Exchange: ControlExchange.Name, Message: msg}); err != nil {
		return fmt.Errorf("broker: control %s: %w", method, err)
	}
	return nil
}
