package amqp

import (
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/celeriac/celeriac/broker"
	amqp "github.com/rabbitmq/amqp091-go"
)

// toTable converts headers or declare arguments to an AMQP field table.
// Integers are written as py-amqp writes them: signed 32-bit when they fit
// (RabbitMQ compares declare arguments by type, so x-max-priority must match
// what kombu sent), signed 64-bit otherwise. Maps and slices of any element
// type become nested tables and arrays.
func toTable(m map[string]any) (amqp.Table, error) {
	if m == nil {
		return nil, nil
	}
	t := make(amqp.Table, len(m))
	for k, v := range m {
		fv, err := toField(v, 0)
		if err != nil {
			return nil, fmt.Errorf("amqp: field %q: %w", k, err)
		}
		t[k] = fv
	}
	return t, nil
}

const maxDepth = 32

func toField(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	switch x := v.(type) {
	case nil, bool, string, []byte, float64, float32, time.Time, amqp.Decimal:
		return x, nil
	case int:
		return intField(int64(x)), nil
	case int8:
		return int32(x), nil
	case int16:
		return int32(x), nil
	case int32:
		return x, nil
	case int64:
		return intField(x), nil
	case uint8:
		return int32(x), nil
	case uint16:
		return int32(x), nil
	case uint32:
		return intField(int64(x)), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d overflows a signed 64-bit field", x)
		}
		return intField(int64(x)), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d overflows a signed 64-bit field", x)
		}
		return intField(int64(x)), nil
	case amqp.Table:
		return toFieldMap(x, depth)
	case map[string]any:
		return toFieldMap(x, depth)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			fe, err := toField(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = fe
		}
		return out, nil
	}
	// Typed slices and maps ([]string, map[string]int…) by reflection.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			fe, err := toField(rv.Index(i).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = fe
		}
		return out, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		out := make(amqp.Table, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			fe, err := toField(it.Value().Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[it.Key().String()] = fe
		}
		return out, nil
	case reflect.String:
		return rv.String(), nil
	}
	return nil, fmt.Errorf("type %T cannot be sent in an AMQP table", v)
}

func toFieldMap(m map[string]any, depth int) (amqp.Table, error) {
	out := make(amqp.Table, len(m))
	for k, e := range m {
		fe, err := toField(e, depth+1)
		if err != nil {
			return nil, err
		}
		out[k] = fe
	}
	return out, nil
}

func intField(v int64) any {
	if v >= math.MinInt32 && v <= math.MaxInt32 {
		return int32(v)
	}
	return v
}

// fromTable converts a received field table to plain Go values: every
// integer becomes int64, float32 float64, nested tables map[string]any, so
// that what arrives compares equal to what the memory transport delivers.
func fromTable(t amqp.Table) map[string]any {
	if t == nil {
		return nil
	}
	m := make(map[string]any, len(t))
	for k, v := range t {
		m[k] = fromField(v)
	}
	return m
}

func fromField(v any) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case float32:
		return float64(x)
	case amqp.Decimal:
		return float64(x.Value) / math.Pow10(int(x.Scale))
	case amqp.Table:
		return fromTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromField(e)
		}
		return out
	}
	return v
}

// toPublishing maps a broker.Message onto AMQP properties.
func toPublishing(m *broker.Message) (amqp.Publishing, error) {
	h, err := toTable(m.Headers)
	if err != nil {
		return amqp.Publishing{}, err
	}
	return amqp.Publishing{
		Headers:         h,
		ContentType:     m.ContentType,
		ContentEncoding: m.ContentEncoding,
		DeliveryMode:    m.Properties.DeliveryMode,
		Priority:        m.Properties.Priority,
		CorrelationId:   m.Properties.CorrelationID,
		ReplyTo:         m.Properties.ReplyTo,
		Expiration:      m.Properties.Expiration,
		MessageId:       m.Properties.MessageID,
		Body:            m.Body,
	}, nil
}

// toMessage maps a delivery back to a broker.Message.
func toMessage(d *amqp.Delivery) *broker.Message {
	return &broker.Message{
		Body:            d.Body,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		Headers:         fromTable(d.Headers),
		Properties: broker.Properties{
			CorrelationID: d.CorrelationId,
			ReplyTo:       d.ReplyTo,
			DeliveryMode:  d.DeliveryMode,
			Priority:      d.Priority,
			Expiration:    d.Expiration,
			MessageID:     d.MessageId,
		},
	}
}
