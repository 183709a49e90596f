package broker

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// EncodeOptions tune how a task becomes a message.
type EncodeOptions struct {
	// Serializer is "json" (default) or "msgpack".
	Serializer string
	// Compression is "", "gzip" (kombu's zlib), "zstd" or "brotli".
	Compression string
	// BrokerExpiration also sets the AMQP per-message TTL from Expires, as
	// Celery 5.2.6 does. Off by default: RabbitMQ then drops an expired
	// message silently and its result stays PENDING forever, whereas a
	// worker that receives it records REVOKED (expired) for AsyncResult.
	BrokerExpiration bool
	// Now is the clock used for the expiration TTL; nil means time.Now.
	Now func() time.Time
}

// EncodeTask builds a protocol 2 message for t with every header Celery
// 5.2.6 sends (unset ones as null, never ""), the three-part body
// [args, kwargs, embed] and Celery's properties.
func EncodeTask(t *Task, opts EncodeOptions) (*Message, error) {
	if t.Name == "" {
		return nil, fmt.Errorf("broker: task name is empty")
	}
	if t.ID == "" {
		return nil, fmt.Errorf("broker: task id is empty")
	}
	args := t.Args
	if args == nil {
		args = []any{}
	}
	kwargs := t.Kwargs
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	var chord any
	if t.Chord != nil {
		chord = t.Chord.toMap()
	}
	embed := map[string]any{
		"callbacks": signaturesToList(t.Callbacks),
		"errbacks":  signaturesToList(t.Errbacks),
		"chain":     signaturesToList(t.Chain),
		"chord":     chord,
	}
	body, ct, ce, err := Marshal(opts.Serializer, []any{args, kwargs, embed})
	if err != nil {
		return nil, err
	}
	h := make(map[string]any, 17+len(t.Headers))
	for k, v := range t.Headers {
		h[k] = v
	}
	if opts.Compression != "" {
		var name string
		if body, name, err = Compress(opts.Compression, body); err != nil {
			return nil, err
		}
		h["compression"] = name
	}
	root := t.RootID
	if root == "" {
		root = t.ID
	}
	argsRepr, kwargsRepr := t.ArgsRepr, t.KwargsRepr
	if argsRepr == "" {
		argsRepr = ArgsRepr(args)
	}
	if kwargsRepr == "" {
		kwargsRepr = Repr(kwargs)
	}
	origin := t.Origin
	if origin == "" {
		origin = Origin()
	}
	h["lang"] = "go"
	h["task"] = t.Name
	h["id"] = t.ID
	h["shadow"] = nullStr(t.Shadow)
	h["eta"] = nullTime(t.ETA)
	h["expires"] = nullTime(t.Expires)
	h["group"] = nullStr(t.GroupID)
	if t.GroupIndex != nil {
		h["group_index"] = *t.GroupIndex
	} else {
		h["group_index"] = nil
	}
	h["retries"] = t.Retries
	h["timelimit"] = []any{nullFloat(t.TimeLimit[0]), nullFloat(t.TimeLimit[1])}
	h["root_id"] = root
	h["parent_id"] = nullStr(t.ParentID)
	h["argsrepr"] = argsRepr
	h["kwargsrepr"] = kwargsRepr
	h["origin"] = origin
	h["ignore_result"] = t.IgnoreResult

	m := &Message{
		Body: body, ContentType: ct, ContentEncoding: ce, Headers: h,
		Properties: Properties{
			CorrelationID: t.ID,
			ReplyTo:       t.ReplyTo,
			DeliveryMode:  2,
			Priority:      t.Priority,
		},
	}
	if opts.BrokerExpiration && t.Expires != nil {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		ms := t.Expires.Sub(now()).Milliseconds()
		if ms < 0 {
			ms = 0
		}
		m.Properties.Expiration = strconv.FormatInt(ms, 10)
	}
	return m, nil
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return FormatTime(*t)
}

func nullFloat(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

var origin = sync.OnceValue(func() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return "gen" + strconv.Itoa(os.Getpid()) + "@" + host
})

// Origin is this process's node name as Celery clients write it:
// "gen<pid>@<hostname>".
func Origin() string { return origin() }
