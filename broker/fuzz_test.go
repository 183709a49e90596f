package broker

import (
	"testing"
)

// FuzzDecodeTask feeds arbitrary bodies and headers through the decoder:
// it must return an error or a task, never panic.
func FuzzDecodeTask(f *testing.F) {
	for _, name := range []string{"v2_simple", "v2_chain", "v2_eta_expires", "v1_simple", "v2_kwargs_msgpack"} {
		m := loadFixture(f, name)
		hb, _ := MarshalJSON(m.Headers)
		f.Add(m.Body, hb, m.ContentType)
	}
	f.Add([]byte(`[[],{},null]`), []byte(`{"task":"t","id":"i","timelimit":[1,null]}`), ContentJSON)
	f.Fuzz(func(t *testing.T, body, headers []byte, ct string) {
		h := map[string]any{}
		if v, err := UnmarshalJSON(headers); err == nil {
			if m, ok := v.(map[string]any); ok {
				h = m
			}
		}
		task, err := DecodeTask(&Message{Body: body, ContentType: ct, Headers: h})
		if err == nil && (task.ID == "" || task.Name == "" || task.Args == nil || task.Kwargs == nil) {
			t.Fatalf("decoded a task without id/name/args/kwargs: %+v", task)
		}
		if err == nil {
			if _, err := EncodeTask(task, EncodeOptions{}); err != nil {
				t.Fatalf("re-encoding a decoded task failed: %v", err)
			}
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-25T18:31:29.183361+00:00", "2026-11-25", "2026-11-25 18:31Z", "2026-11-25T18:31:29.1-0530"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tt, err := ParseTime(s)
		if err != nil {
			return
		}
		back, err := ParseTime(FormatTime(tt))
		if err != nil || !back.Equal(tt.Truncate(1000)) {
			t.Fatalf("%q -> %v -> %q -> %v %v", s, tt, FormatTime(tt), back, err)
		}
	})
}

func FuzzUnmarshalMsgpack(f *testing.F) {
	f.Add(loadFixture(f, "v2_kwargs_msgpack").Body)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Unmarshal(ContentMsgpack, b)
	})
}
