package broker

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/vmihailenco/msgpack/v5"
)

// Serializer names accepted by Encode and the producer.
const (
	SerializerJSON    = "json"
	SerializerMsgpack = "msgpack"
)

// ErrContentDisallowed is wrapped by ContentError: the message's content
// type is not one celeriac will decode (pickle, yaml or unknown).
var ErrContentDisallowed = errors.New("broker: content type not accepted")

// ContentError says why a message body was refused.
type ContentError struct {
	ContentType string
	Reason      string
}

func (e *ContentError) Error() string {
	return fmt.Sprintf("broker: refusing content type %q: %s", e.ContentType, e.Reason)
}

func (e *ContentError) Unwrap() error { return ErrContentDisallowed }

// DecodeError is returned for a body that claims a supported content type
// but cannot be decoded.
type DecodeError struct {
	ContentType string
	Err         error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("broker: cannot decode %s body: %v", e.ContentType, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// maxDecompressed bounds a decompressed body, so a small compressed message
// cannot expand into gigabytes.
const maxDecompressed = 256 << 20

// Decompress undoes kombu's compression named by the "compression" header.
func Decompress(codec string, body []byte) ([]byte, error) {
	var r io.Reader
	var err error
	switch codec {
	case "", "identity":
		return body, nil
	case "application/x-gzip", "gzip", "zlib": // kombu's "gzip" is a zlib stream
		r, err = zlib.NewReader(bytes.NewReader(body))
	case "application/x-bz2", "bzip2", "bzip":
		r = bzip2.NewReader(bytes.NewReader(body))
	case "application/x-lzma", "lzma", "xz":
		r, err = xz.NewReader(bytes.NewReader(body))
	case "application/x-brotli", "brotli":
		r = brotli.NewReader(bytes.NewReader(body))
	case "application/zstd", "zstd", "zstandard":
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1))
		if err == nil {
			defer d.Close()
			r = d
		}
	default:
		return nil, fmt.Errorf("broker: unknown compression %q", codec)
	}
	if err != nil {
		return nil, fmt.Errorf("broker: %s: %w", codec, err)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err != nil {
		return nil, fmt.Errorf("broker: %s: %w", codec, err)
	}
	if len(out) > maxDecompressed {
		return nil, fmt.Errorf("broker: %s: decompressed body larger than %d bytes", codec, maxDecompressed)
	}
	return out, nil
}

// Compress applies kombu's zlib compression ("application/x-gzip").
func Compress(codec string, body []byte) ([]byte, string, error) {
	switch codec {
	case "", "identity":
		return body, "", nil
	case "application/x-gzip", "gzip", "zlib":
		var b bytes.Buffer
		w := zlib.NewWriter(&b)
		_, _ = w.Write(body)
		_ = w.Close()
		return b.Bytes(), "application/x-gzip", nil
	case "application/zstd", "zstd":
		e, _ := zstd.NewWriter(nil)
		out := e.EncodeAll(body, nil)
		_ = e.Close()
		return out, "application/zstd", nil
	case "application/x-brotli", "brotli":
		var b bytes.Buffer
		w := brotli.NewWriter(&b)
		_, _ = w.Write(body)
		_ = w.Close()
		return b.Bytes(), "application/x-brotli", nil
	}
	return nil, "", fmt.Errorf("broker: unsupported compression %q (use gzip, zstd or brotli)", codec)
}

// Unmarshal decodes a message body into celeriac's value model: nil, bool,
// int64, uint64 (only above MaxInt64), float64, string, []byte, []any and
// map[string]any. JSON integers too large for 64 bits stay json.Number.
// Pickle, YAML and unknown content types are refused, never decoded.
func Unmarshal(contentType string, body []byte) (any, error) {
	switch normContentType(contentType) {
	case ContentJSON:
		v, err := UnmarshalJSON(body)
		if err != nil {
			return nil, &DecodeError{ContentType: ContentJSON, Err: err}
		}
		return v, nil
	case ContentMsgpack:
		v, err := unmarshalMsgpack(body)
		if err != nil {
			return nil, &DecodeError{ContentType: ContentMsgpack, Err: err}
		}
		return v, nil
	case ContentPickle:
		return nil, &ContentError{ContentType: contentType, Reason: "pickle can execute code on load and is never decoded; configure the sender with serializer='json' or 'msgpack'"}
	case ContentYAML:
		return nil, &ContentError{ContentType: contentType, Reason: "yaml is not accepted; configure the sender with serializer='json' or 'msgpack'"}
	default:
		return nil, &ContentError{ContentType: contentType, Reason: "unknown content type; accepted are application/json and application/x-msgpack"}
	}
}

func normContentType(ct string) string {
	ct = strings.TrimSpace(strings.ToLower(ct))
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = strings.TrimSpace(ct[:i])
	}
	switch ct {
	case "application/json", "json":
		return ContentJSON
	case "application/x-msgpack", "application/msgpack", "msgpack":
		return ContentMsgpack
	}
	return ct
}

// UnmarshalJSON decodes JSON into the value model, converting kombu 5.3+'s
// {"__type__": …, "__value__": …} envelopes for datetime, date, time,
// decimal, uuid, bytes and base64 into plain values.
func UnmarshalJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("trailing data after JSON value")
	}
	return normJSON(v), nil
}

func normJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		return normNumber(x)
	case []any:
		for i := range x {
			x[i] = normJSON(x[i])
		}
		return x
	case map[string]any:
		if len(x) == 2 {
			if t, ok := x["__type__"].(string); ok {
				if val, ok := x["__value__"]; ok {
					if conv, ok := kombuType(t, val); ok {
						return conv
					}
				}
			}
		}
		for k, e := range x {
			x[k] = normJSON(e)
		}
		return x
	}
	return v
}

func normNumber(n json.Number) any {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return u
		}
		return n
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return n
	}
	return f
}

// kombuType converts a kombu 5.3+ typed envelope. Datetimes, dates, times,
// decimals and UUIDs become the strings kombu 5.2 would have sent.
func kombuType(t string, val any) (any, bool) {
	switch t {
	case "datetime", "date", "time", "decimal":
		if s, ok := val.(string); ok {
			return s, true
		}
	case "uuid":
		if m, ok := val.(map[string]any); ok {
			if h, ok := m["hex"].(string); ok && len(h) == 32 {
				return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
			}
		}
	case "bytes":
		if s, ok := val.(string); ok {
			return []byte(s), true
		}
	case "base64":
		if s, ok := val.(string); ok {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				return b, true
			}
		}
	}
	return nil, false
}

func unmarshalMsgpack(b []byte) (any, error) {
	if err := checkMsgpack(b); err != nil {
		return nil, err
	}
	d := msgpack.NewDecoder(bytes.NewReader(b))
	d.UseLooseInterfaceDecoding(true)
	d.SetMapDecoder(func(d *msgpack.Decoder) (any, error) {
		n, err := d.DecodeMapLen()
		if err != nil || n < 0 {
			return nil, err
		}
		// n comes from the wire: never trust it for an allocation.
		m := make(map[string]any, min(n, 64))
		for i := 0; i < n; i++ {
			kv, err := d.DecodeInterfaceLoose()
			if err != nil {
				return nil, err
			}
			var k string
			switch kk := kv.(type) {
			case string:
				k = kk
			case []byte:
				k = string(kk)
			default:
				k = fmt.Sprint(kk)
			}
			if m[k], err = d.DecodeInterfaceLoose(); err != nil {
				return nil, err
			}
		}
		return m, nil
	})
	v, err := d.DecodeInterfaceLoose()
	if err != nil {
		return nil, err
	}
	if _, err := d.PeekCode(); err == nil {
		return nil, errors.New("trailing data after msgpack value")
	}
	return fixMsgpack(v), nil
}

// fixMsgpack makes loose msgpack values match the JSON model: int64 unless
// the value only fits uint64.
func fixMsgpack(v any) any {
	switch x := v.(type) {
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return x
	case []any:
		for i := range x {
			x[i] = fixMsgpack(x[i])
		}
	case map[string]any:
		for k, e := range x {
			x[k] = fixMsgpack(e)
		}
	}
	return v
}

// Marshal serializes v with the named serializer and returns the body with
// its content type and encoding.
func Marshal(serializer string, v any) (body []byte, contentType, contentEncoding string, err error) {
	switch serializer {
	case "", SerializerJSON, ContentJSON:
		b, err := MarshalJSON(v)
		return b, ContentJSON, "utf-8", err
	case SerializerMsgpack, ContentMsgpack:
		var buf bytes.Buffer
		e := msgpack.NewEncoder(&buf)
		e.UseCompactInts(true)
		e.UseCompactFloats(false)
		e.SetSortMapKeys(true)
		e.SetCustomStructTag("json")
		if err := e.Encode(v); err != nil {
			return nil, "", "", fmt.Errorf("broker: msgpack: %w", err)
		}
		return buf.Bytes(), ContentMsgpack, "binary", nil
	}
	return nil, "", "", fmt.Errorf("broker: unsupported serializer %q (use json or msgpack)", serializer)
}
