package broker

// Message is a message as it travels through a transport: serialized body,
// content type and encoding, application headers and basic properties.
// Task messages, results sent over RPC, events and remote-control commands
// all use it.
type Message struct {
	Body            []byte
	ContentType     string
	ContentEncoding string
	Headers         map[string]any
	Properties      Properties
}

// Properties are the AMQP basic properties Celery uses. On Redis they are
// stored in the envelope's "properties" object.
type Properties struct {
	CorrelationID string
	ReplyTo       string
	// DeliveryMode is 2 for persistent messages (Celery's default for tasks),
	// 1 for transient ones (events, results over RPC, control replies).
	DeliveryMode uint8
	Priority     uint8
	// Expiration is a per-message TTL in milliseconds as a decimal string.
	Expiration string
	MessageID  string
}

// Content types Celery can put on a message.
const (
	ContentJSON    = "application/json"
	ContentMsgpack = "application/x-msgpack"
	ContentYAML    = "application/x-yaml"
	ContentPickle  = "application/x-python-serialize"
	ContentData    = "application/data"
	ContentText    = "text/plain"
)

// Header returns a header's value, or nil.
func (m *Message) Header(key string) any {
	if m == nil || m.Headers == nil {
		return nil
	}
	return m.Headers[key]
}

// Clone returns a deep-enough copy of m: headers map and body are copied,
// so the copy can be changed (e.g. for a retry) without touching m.
func (m *Message) Clone() *Message {
	c := *m
	c.Body = append([]byte(nil), m.Body...)
	if m.Headers != nil {
		c.Headers = make(map[string]any, len(m.Headers))
		for k, v := range m.Headers {
			c.Headers[k] = v
		}
	}
	return &c
}
