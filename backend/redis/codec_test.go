package redis

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/testenv"
)

// goCases are the Go equivalents of the cases testdata/celery_backend.py
// encodes with Celery; each must serialize to the same bytes.
func goCases(t *testing.T) map[string]any {
	done, err := time.Parse("2006-01-02T15:04:05.000000", "2024-05-01T12:00:00.123456")
	if err != nil {
		t.Fatal(err)
	}
	tb := "Traceback (most recent call last):\n  boom\n"
	short := "tb"
	zero := 0
	meta := func(m broker.ResultMeta) any { return metaDoc(&m, done) }
	return map[string]any{
		"success_int": meta(broker.ResultMeta{TaskID: "t-success_int", Status: broker.StateSuccess, Result: int64(5)}),
		"success_nested": meta(broker.ResultMeta{TaskID: "t-success_nested", Status: broker.StateSuccess,
			Result: map[string]any{"a": "x", "b": []any{int64(1), 2.5, nil, true, "é"}}}),
		"success_float": meta(broker.ResultMeta{TaskID: "t-success_float", Status: broker.StateSuccess, Result: 2.0}),
		"failure": meta(broker.ResultMeta{TaskID: "t-failure", Status: broker.StateFailure, Traceback: &tb,
			Result: &broker.ExceptionInfo{Type: "ValueError", Message: []any{"bad value", int64(42)}, Module: "builtins"}}),
		"failure_celeriac": meta(broker.ResultMeta{TaskID: "t-failure_celeriac", Status: broker.StateFailure,
			Result: broker.ExceptionInfo{Type: "TaskError", Message: []any{"it broke"}, Module: "celeriac"}}),
		"revoked": meta(broker.ResultMeta{TaskID: "t-revoked", Status: broker.StateRevoked, Result: broker.ExcRevoked("expired")}),
		"started": meta(broker.ResultMeta{TaskID: "t-started", Status: broker.StateStarted,
			Result: map[string]any{"pid": int64(123), "hostname": "celery@host"}}),
		"retry": meta(broker.ResultMeta{TaskID: "t-retry", Status: broker.StateRetry, Traceback: &short,
			Result: (&broker.ExceptionInfo{Type: "KeyError", Message: []any{"k"}, Module: "builtins"}).ToMap()}),
		"with_request": meta(broker.ResultMeta{TaskID: "t-with_request", Status: broker.StateSuccess,
			Result: []any{int64(1), "two"}, Children: []any{ResultNode{ID: "c1"}.Tuple()}, GroupID: "g1", ParentID: "p1"}),
		"extended": meta(broker.ResultMeta{TaskID: "t-extended", Status: broker.StateSuccess, Result: int64(3),
			Children: []any{}, Name: "tasks.add", Args: []any{int64(1), int64(2)}, Kwargs: map[string]any{"a": int64(1)},
			Worker: "celery@host", Retries: &zero, Queue: "celery"}),
		"chord_member": []any{int64(1), "t-1", "FAILURE",
			orderResult(&broker.ExceptionInfo{Type: "ValueError", Message: []any{"x"}, Module: "builtins"})},
		"group": ordered{keys: []string{"result"}, vals: []any{ResultNode{ID: "g-1", Group: true, Children: []ResultNode{
			{ID: "a"}, {ID: "g-2", Group: true, Children: []ResultNode{{ID: "b"}}}}}.Tuple()}},
	}
}

// TestEncodeMatchesCelery encodes the same documents as Celery 5.2.6 and
// compares the bytes, for both result serializers.
func TestEncodeMatchesCelery(t *testing.T) {
	for _, ser := range []string{"json", "msgpack"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			lines := pyRun(t, testCtx(t, 60*time.Second), nil, "encode", testenv.RedisURL(t), ser)
			cases := goCases(t)
			if len(lines) != len(cases) {
				t.Fatalf("python gave %d cases, Go has %d", len(lines), len(cases))
			}
			b := &Backend{serializer: ser}
			for _, l := range lines {
				name := l["case"].(string)
				want, err := base64.StdEncoding.DecodeString(l["doc"].(string))
				if err != nil {
					t.Fatal(err)
				}
				got, err := b.encode(cases[name])
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: Go and Celery differ\n got: %q\nwant: %q", name, got, want)
				}
			}
		})
	}
}

func TestAsciiJSON(t *testing.T) {
	for in, want := range map[string]string{
		`"abc"`:       `"abc"`,
		`"é"`:         `"\u00e9"`,
		`{"k€": "😀"}`: `{"k\u20ac": "\ud83d\ude00"}`,
		"":            "",
	} {
		if got := string(asciiJSON([]byte(in))); got != want {
			t.Errorf("asciiJSON(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSniffAndDecode(t *testing.T) {
	jb := &Backend{serializer: "json"}
	mb := &Backend{serializer: "msgpack"}
	meta := &broker.ResultMeta{TaskID: "x", Status: broker.StateFailure,
		Result: &broker.ExceptionInfo{Type: "ValueError", Message: []any{"bad"}, Module: "builtins"}}
	for _, b := range []*Backend{jb, mb} {
		raw, err := b.encode(metaDoc(meta, time.Unix(0, 0)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMeta("x", raw)
		if err != nil {
			t.Fatalf("%s: %v", b.serializer, err)
		}
		exc, ok := got.Exception()
		if !ok || exc.Type != "ValueError" || exc.Text() != "bad" {
			t.Errorf("%s: exception read back as %+v", b.serializer, exc)
		}
		if got.DateDone == nil || !got.DateDone.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: date_done %v", b.serializer, got.DateDone)
		}
	}
	for _, bad := range [][]byte{[]byte("{"), {0x81}, []byte(`[1, 2]`), []byte(`{"result": 1}`)} {
		if _, err := decodeMeta("x", bad); err == nil {
			t.Errorf("decodeMeta(%q) succeeded", bad)
		}
	}
}

func TestResultTuples(t *testing.T) {
	tree := ResultNode{ID: "g", Group: true, Parent: &ResultNode{ID: "p"}, Children: []ResultNode{
		{ID: "a"}, {ID: "g2", Group: true, Children: []ResultNode{}}, {ID: "b", Parent: &ResultNode{ID: "a"}},
	}}
	back, err := ParseResultTuple(roundTrip(t, tree.Tuple()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tree, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// Celery also accepts a bare id instead of [id, parent].
	n, err := ParseResultTuple([]any{"x", nil})
	if err != nil || n.ID != "x" || n.Group {
		t.Errorf("bare id: %+v, %v", n, err)
	}
	for _, bad := range []any{nil, "x", []any{1, nil}, []any{[]any{"x"}, nil}, []any{[]any{"x", nil}, "kids"}} {
		if _, err := ParseResultTuple(bad); err == nil {
			t.Errorf("ParseResultTuple(%v) succeeded", bad)
		}
	}
}

func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b := &Backend{serializer: "json"}
	raw, err := b.encode(v)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := decodeValue(raw)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPyExcRepr(t *testing.T) {
	for _, tc := range []struct {
		exc  broker.ExceptionInfo
		want string
	}{
		{broker.ExceptionInfo{Type: "ValueError", Message: []any{"bad"}}, "ValueError('bad')"},
		{broker.ExceptionInfo{Type: "KeyError", Message: []any{"k", int64(1)}}, "KeyError('k', 1)"},
		{broker.ExceptionInfo{Type: "Outer.TaskError"}, "TaskError()"},
	} {
		if got := pyExcRepr(tc.exc); got != tc.want {
			t.Errorf("pyExcRepr(%+v) = %q, want %q", tc.exc, got, tc.want)
		}
	}
}
