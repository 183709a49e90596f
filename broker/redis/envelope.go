package redis

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/uuid"

	"github.com/celeriac/celeriac/broker"
)

// ErrBadEnvelope is wrapped by errors decoding a list element that is not
// a kombu envelope.
var ErrBadEnvelope = errors.New("redis: bad message envelope")

// envelope is kombu's JSON message as it sits in a Redis list or travels
// over PUBLISH. Field order follows what kombu 5.2 writes.
type envelope struct {
	Body            string          `json:"body"`
	ContentEncoding string          `json:"content-encoding"`
	ContentType     string          `json:"content-type"`
	Headers         json.RawMessage `json:"headers"`
	Properties      properties      `json:"properties"`
}

type properties struct {
	CorrelationID string       `json:"correlation_id,omitempty"`
	ReplyTo       string       `json:"reply_to,omitempty"`
	DeliveryMode  *int         `json:"delivery_mode,omitempty"`
	Expiration    string       `json:"expiration,omitempty"`
	MessageID     string       `json:"message_id,omitempty"`
	DeliveryInfo  deliveryInfo `json:"delivery_info"`
	Priority      int          `json:"priority"`
	BodyEncoding  string       `json:"body_encoding"`
	DeliveryTag   string       `json:"delivery_tag"`
}

type deliveryInfo struct {
	Exchange    string `json:"exchange"`
	RoutingKey  string `json:"routing_key"`
	Redelivered bool   `json:"redelivered,omitempty"`
}

// incoming is the decoding view: kombu writes some properties with types
// that differ between versions (delivery_mode, priority may be null), so
// they are read loosely.
type incoming struct {
	Body            json.RawMessage `json:"body"`
	ContentEncoding *string         `json:"content-encoding"`
	ContentType     *string         `json:"content-type"`
	Headers         json.RawMessage `json:"headers"`
	Properties      struct {
		CorrelationID any             `json:"correlation_id"`
		ReplyTo       any             `json:"reply_to"`
		DeliveryMode  any             `json:"delivery_mode"`
		Expiration    any             `json:"expiration"`
		MessageID     any             `json:"message_id"`
		DeliveryInfo  map[string]any  `json:"delivery_info"`
		Priority      any             `json:"priority"`
		BodyEncoding  *string         `json:"body_encoding"`
		DeliveryTag   json.RawMessage `json:"delivery_tag"`
	} `json:"properties"`
}

// encodeEnvelope renders m as kombu's envelope for the given exchange and
// routing key, with a fresh delivery tag, as kombu's basic_publish does.
func encodeEnvelope(m *broker.Message, exchange, routingKey string) ([]byte, string, error) {
	headers := m.Headers
	if headers == nil {
		headers = map[string]any{}
	}
	h, err := broker.MarshalJSON(headers)
	if err != nil {
		return nil, "", fmt.Errorf("redis: encoding headers: %w", err)
	}
	tag := uuid.NewString()
	e := envelope{
		Body:            base64.StdEncoding.EncodeToString(m.Body),
		ContentEncoding: m.ContentEncoding,
		ContentType:     m.ContentType,
		Headers:         h,
		Properties: properties{
			CorrelationID: m.Properties.CorrelationID,
			ReplyTo:       m.Properties.ReplyTo,
			Expiration:    m.Properties.Expiration,
			MessageID:     m.Properties.MessageID,
			DeliveryInfo:  deliveryInfo{Exchange: exchange, RoutingKey: routingKey},
			Priority:      int(m.Properties.Priority),
			BodyEncoding:  "base64",
			DeliveryTag:   tag,
		},
	}
	if m.Properties.DeliveryMode != 0 {
		dm := int(m.Properties.DeliveryMode)
		e.Properties.DeliveryMode = &dm
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&e); err != nil {
		return nil, "", fmt.Errorf("redis: encoding envelope: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), tag, nil
}

// decoded is an envelope read from Redis.
type decoded struct {
	msg         *broker.Message
	tag         string
	exchange    string
	routingKey  string
	redelivered bool
}

// decodeEnvelope parses one list element or PUBLISH payload.
func decodeEnvelope(raw []byte) (*decoded, error) {
	var in incoming
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEnvelope, err)
	}
	if in.Body == nil || in.Properties.DeliveryInfo == nil && in.Properties.DeliveryTag == nil {
		return nil, fmt.Errorf("%w: no body or properties", ErrBadEnvelope)
	}
	m := &broker.Message{}
	var body any
	if err := json.Unmarshal(in.Body, &body); err != nil {
		return nil, fmt.Errorf("%w: body: %w", ErrBadEnvelope, err)
	}
	var bodyStr string
	switch b := body.(type) {
	case string:
		bodyStr = b
	case nil:
	default:
		// kombu would hand a non-string body to the serializer as is;
		// keep its JSON text.
		bodyStr = string(in.Body)
	}
	if in.Properties.BodyEncoding != nil && *in.Properties.BodyEncoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(bodyStr)
		if err != nil {
			return nil, fmt.Errorf("%w: base64 body: %w", ErrBadEnvelope, err)
		}
		m.Body = b
	} else {
		m.Body = []byte(bodyStr)
	}
	if in.ContentType != nil {
		m.ContentType = *in.ContentType
	}
	if in.ContentEncoding != nil {
		m.ContentEncoding = *in.ContentEncoding
	}
	if len(in.Headers) > 0 && string(in.Headers) != "null" {
		h, err := broker.UnmarshalJSON(in.Headers)
		if err != nil {
			return nil, fmt.Errorf("%w: headers: %w", ErrBadEnvelope, err)
		}
		hm, ok := h.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: headers are not an object", ErrBadEnvelope)
		}
		m.Headers = hm
	}
	p := &in.Properties
	m.Properties.CorrelationID = str(p.CorrelationID)
	m.Properties.ReplyTo = str(p.ReplyTo)
	m.Properties.Expiration = str(p.Expiration)
	m.Properties.MessageID = str(p.MessageID)
	if n, ok := num(p.DeliveryMode); ok && n >= 0 && n < 256 {
		m.Properties.DeliveryMode = uint8(n)
	}
	if n, ok := num(p.Priority); ok {
		m.Properties.Priority = uint8(min(max(n, 0), 255))
	}
	d := &decoded{msg: m}
	if len(p.DeliveryTag) > 0 {
		var tag any
		_ = json.Unmarshal(p.DeliveryTag, &tag)
		d.tag = str(tag)
	}
	if d.tag == "" {
		return nil, fmt.Errorf("%w: no delivery_tag", ErrBadEnvelope)
	}
	d.exchange = str(p.DeliveryInfo["exchange"])
	d.routingKey = str(p.DeliveryInfo["routing_key"])
	d.redelivered, _ = p.DeliveryInfo["redelivered"].(bool)
	return d, nil
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

func num(v any) (int, bool) {
	switch x := v.(type) {
	case float64:
		return int(x), true
	case string:
		n, err := strconv.Atoi(x)
		return n, err == nil
	}
	return 0, false
}

// markRedelivered sets headers.redelivered and
// properties.delivery_info.redelivered in a stored envelope, as kombu's
// _do_restore_message does, leaving every other byte of meaning intact.
func markRedelivered(raw []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	var headers, props, info map[string]json.RawMessage
	if err := json.Unmarshal(top["headers"], &headers); err != nil || headers == nil {
		return raw, nil // kombu skips the marking on a KeyError
	}
	if err := json.Unmarshal(top["properties"], &props); err != nil || props == nil {
		return raw, nil
	}
	if err := json.Unmarshal(props["delivery_info"], &info); err != nil || info == nil {
		return raw, nil
	}
	t := json.RawMessage("true")
	headers["redelivered"] = t
	info["redelivered"] = t
	var err error
	if props["delivery_info"], err = json.Marshal(info); err != nil {
		return nil, err
	}
	if top["properties"], err = json.Marshal(props); err != nil {
		return nil, err
	}
	if top["headers"], err = json.Marshal(headers); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}
