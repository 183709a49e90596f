package redis

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/testenv"
)

var serializers = []string{"json", "msgpack"}

// TestPythonGetsGoResults: states stored by Go are what Python's
// AsyncResult.get() returns or raises.
func TestPythonGetsGoResults(t *testing.T) {
	t.Parallel()
	for _, ser := range serializers {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, Config{Serializer: ser})
			ctx := testCtx(t, 60*time.Second)
			tb := "Traceback (most recent call last):\n  in Go\n"
			cases := []struct {
				meta *broker.ResultMeta
				want map[string]any
			}{
				{&broker.ResultMeta{Status: broker.StateSuccess, Result: map[string]any{"x": []any{int64(1), 2.5, "é"}}},
					map[string]any{"state": "SUCCESS", "result": map[string]any{"x": []any{1.0, 2.5, "é"}}}},
				{&broker.ResultMeta{Status: broker.StateFailure, Traceback: &tb,
					Result: &broker.ExceptionInfo{Type: "ValueError", Message: []any{"bad value", int64(42)}, Module: "builtins"}},
					map[string]any{"state": "FAILURE", "exc_type": "ValueError", "exc_module": "builtins", "message": "('bad value', 42)"}},
				{&broker.ResultMeta{Status: broker.StateFailure,
					Result: &broker.ExceptionInfo{Type: "TaskError", Message: []any{"it broke"}, Module: "celeriac"}},
					map[string]any{"state": "FAILURE", "exc_type": "TaskError", "exc_module": "celery.exceptions", "message": "it broke"}},
				{&broker.ResultMeta{Status: broker.StateRevoked, Result: broker.ExcRevoked("revoked")},
					map[string]any{"state": "REVOKED", "exc_type": "TaskRevokedError", "exc_module": "celery.exceptions", "message": "revoked"}},
			}
			args := []string{"get", testenv.RedisURL(t), ser}
			for _, c := range cases {
				c.meta.TaskID = newID(t)
				c.want["id"] = c.meta.TaskID
				if err := b.Store(ctx, c.meta); err != nil {
					t.Fatal(err)
				}
				args = append(args, c.meta.TaskID)
			}
			got := pyRun(t, ctx, nil, args...)
			if len(got) != len(cases) {
				t.Fatalf("python printed %d lines", len(got))
			}
			for i, c := range cases {
				if diff := cmp.Diff(c.want, got[i]); diff != "" {
					t.Errorf("case %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// TestGoGetsPythonResults: states stored by Python's backend are read by Go.
func TestGoGetsPythonResults(t *testing.T) {
	t.Parallel()
	for _, ser := range serializers {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, Config{}) // a JSON backend reads msgpack too
			ctx := testCtx(t, 60*time.Second)
			ids := []string{newID(t), newID(t), newID(t), newID(t)}
			ops := []map[string]any{
				{"id": ids[0], "state": "SUCCESS", "result": map[string]any{"sum": 5, "l": []any{1, "a", nil}}},
				{"id": ids[1], "state": "FAILURE", "exc": "ValueError", "args": []any{"bad value", 42}, "traceback": "tb"},
				{"id": ids[2], "state": "REVOKED", "reason": "expired"},
				{"id": ids[3], "state": "STARTED", "result": map[string]any{"pid": 1, "hostname": "celery@h"}},
			}
			pyRun(t, ctx, ops, "store", testenv.RedisURL(t), ser)
			wantCT := map[string]string{"json": broker.ContentJSON, "msgpack": broker.ContentMsgpack}[ser]
			m, err := b.Wait(ctx, ids[0])
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]any{"sum": int64(5), "l": []any{int64(1), "a", nil}}, m.Result); diff != "" || m.ContentType != wantCT {
				t.Errorf("SUCCESS: %s %s", diff, m.ContentType)
			}
			m, err = b.Get(ctx, ids[1])
			if err != nil {
				t.Fatal(err)
			}
			exc, ok := m.Exception()
			if !ok || exc.Type != "ValueError" || exc.Module != "builtins" || exc.Text() != "('bad value', 42)" || *m.Traceback != "tb" {
				t.Errorf("FAILURE read as %+v %v", exc, m.Traceback)
			}
			if err := m.Err(); err == nil {
				t.Error("FAILURE has no Err")
			}
			m, _ = b.Get(ctx, ids[2])
			if exc, ok := m.Exception(); !ok || exc.Type != "TaskRevokedError" || exc.Text() != "expired" || m.DateDone == nil {
				t.Errorf("REVOKED read as %+v", m)
			}
			m, _ = b.Get(ctx, ids[3])
			if m.Status != broker.StateStarted || m.Result.(map[string]any)["hostname"] != "celery@h" {
				t.Errorf("STARTED read as %+v", m)
			}
		})
	}
}

// TestPythonWaiterWakesOnGoStore: a Python client already blocked in
// AsyncResult.get() is woken by the PUBLISH of a Go Store.
func TestPythonWaiterWakesOnGoStore(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{})
	ctx := testCtx(t, 60*time.Second)
	id := newID(t)
	py := testenv.Python(t, "celery")
	cmd := exec.CommandContext(ctx, py, "testdata/celery_backend.py", "get", testenv.RedisURL(t), "json", id)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, b.Client(), 1, TaskKey(id)) // Python is subscribed and waiting
	if err := b.Store(ctx, success(id, "from Go")); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	got := parseLines(t, stdout.Bytes())
	if len(got) != 1 || got[0]["result"] != "from Go" {
		t.Errorf("python got %v", got)
	}
}

func TestGroupInterop(t *testing.T) {
	t.Parallel()
	for _, ser := range serializers {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, Config{Serializer: ser})
			ctx := testCtx(t, 60*time.Second)
			url := testenv.RedisURL(t)
			// Go saves, Python restores.
			gid := newID(t)
			g := ResultNode{ID: gid, Group: true, Children: []ResultNode{
				{ID: "a"}, {ID: gid + "-sub", Group: true, Children: []ResultNode{{ID: "b"}, {ID: "c"}}}}}
			if err := b.SaveGroup(ctx, g); err != nil {
				t.Fatal(err)
			}
			got := pyRun(t, ctx, nil, "restore-group", url, ser, gid)
			want := map[string]any{"group": gid, "children": []any{"a", map[string]any{"group": gid + "-sub", "children": []any{"b", "c"}}}}
			if len(got) != 1 || !cmp.Equal(want, got[0]) {
				t.Errorf("Python restored %v, want %v", got, want)
			}
			// Python saves, Go restores.
			gid2 := newID(t)
			pyRun(t, ctx, nil, "save-group", url, ser, gid2, "x", "sub:y,z")
			back, err := b.RestoreGroup(ctx, gid2)
			if err != nil {
				t.Fatal(err)
			}
			wantNode := ResultNode{ID: gid2, Group: true, Children: []ResultNode{
				{ID: "x"}, {ID: "sub", Group: true, Children: []ResultNode{{ID: "y"}, {ID: "z"}}}}}
			if diff := cmp.Diff(wantNode, back); diff != "" {
				t.Errorf("Go restored (-want +got):\n%s", diff)
			}
		})
	}
}

// TestChordInterop runs chords whose header parts are recorded half by
// Python's RedisBackend.on_chord_part_return and half by Go at the same
// time: each chord's body fires exactly once, on one side, with the results
// in header order.
func TestChordInterop(t *testing.T) {
	t.Parallel()
	for _, ser := range serializers {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, Config{Serializer: ser})
			ctx := testCtx(t, 60*time.Second)
			url := testenv.RedisURL(t)
			const chords, parts = 12, 6
			gids := make([]string, chords)
			var pySizes, pyParts []map[string]any
			for c := range gids {
				gids[c] = newID(t)
				if c%2 == 0 { // half the senders are Python, half Go
					pySizes = append(pySizes, map[string]any{"op": "size", "gid": gids[c], "size": parts})
				} else if err := b.SetChordSize(ctx, gids[c], parts); err != nil {
					t.Fatal(err)
				}
				for i := 0; i < parts; i += 2 {
					pyParts = append(pyParts, map[string]any{"op": "part", "gid": gids[c],
						"id": fmt.Sprintf("%s-%d", gids[c], i), "index": i, "state": "SUCCESS", "result": i * 10})
				}
			}
			pyRun(t, ctx, pySizes, "chord", url, ser)

			fired := map[string][]any{}
			var mu sync.Mutex
			lines := pyStream(t, ctx, pyParts, "chord", url, ser)
			if l := <-lines; l["start"] != true {
				t.Fatalf("python said %v", l)
			}
			var wg sync.WaitGroup
			for _, gid := range gids {
				for i := 1; i < parts; i += 2 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						j, err := b.ChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: fmt.Sprintf("%s-%d", gid, i),
							GroupIndex: intp(i), State: broker.StateSuccess, Result: int64(i * 10)})
						if err != nil {
							t.Error(err)
							return
						}
						if j.Ready {
							mu.Lock()
							fired["go "+gid] = j.Results
							mu.Unlock()
						}
					}()
				}
			}
			for l := range lines {
				if id, ok := l["fired"].(string); ok {
					mu.Lock()
					fired["py "+id[len("body-"):]] = l["results"].([]any)
					mu.Unlock()
				}
			}
			wg.Wait()
			var byGo int
			for _, gid := range gids {
				gr, gok := fired["go "+gid]
				pr, pok := fired["py "+gid]
				if gok == pok {
					t.Errorf("chord %s fired by Go: %v, by Python: %v; want exactly one", gid, gok, pok)
					continue
				}
				res := gr
				if pok {
					res = pr
				} else {
					byGo++
				}
				for i, v := range res {
					var n int
					if err := broker.Convert(v, &n); err != nil || n != i*10 {
						t.Errorf("chord %s results %v, want header order", gid, res)
						break
					}
				}
			}
			t.Logf("%d chords: body fired by Go %d times, by Python %d times", chords, byGo, chords-byGo)
		})
	}
}

// TestChordErrorInterop: a failed header task fails the body with the same
// ChordError text whichever side completes the chord.
func TestChordErrorInterop(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{})
	ctx := testCtx(t, 60*time.Second)
	url := testenv.RedisURL(t)
	exc := &broker.ExceptionInfo{Type: "ValueError", Message: []any{"x"}, Module: "builtins"}

	// Go records the failure, Python completes the chord.
	g1 := newID(t)
	if err := b.SetChordSize(ctx, g1, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ChordPartReturn(ctx, ChordPart{GroupID: g1, TaskID: g1 + "-0", GroupIndex: intp(0), State: broker.StateFailure, Result: exc}); err != nil {
		t.Fatal(err)
	}
	pyRun(t, ctx, []map[string]any{{"op": "part", "gid": g1, "id": g1 + "-1", "index": 1, "state": "SUCCESS", "result": 1}}, "chord", url, "json")
	body, err := b.Get(ctx, "body-"+g1)
	if err != nil {
		t.Fatal(err)
	}
	pyExc, ok := body.Exception()
	if !ok || body.Status != broker.StateFailure || pyExc.Type != "ChordError" {
		t.Fatalf("Python marked the body %+v", body)
	}

	// Python records the failure, Go completes the chord.
	g2 := newID(t)
	if err := b.SetChordSize(ctx, g2, 2); err != nil {
		t.Fatal(err)
	}
	pyRun(t, ctx, []map[string]any{{"op": "part", "gid": g2, "id": g2 + "-0", "index": 0, "state": "FAILURE", "exc": []any{"x"}}}, "chord", url, "json")
	j, err := b.ChordPartReturn(ctx, ChordPart{GroupID: g2, TaskID: g2 + "-1", GroupIndex: intp(1), State: broker.StateSuccess, Result: int64(1)})
	if err != nil {
		t.Fatal(err)
	}
	if !j.Ready || j.Err == nil {
		t.Fatalf("join %+v", j)
	}
	// Same wording, with the other side's task id.
	if want := "Dependency " + g1 + "-0 raised ValueError('x')"; pyExc.Text() != want {
		t.Errorf("Python's ChordError %q, want %q", pyExc.Text(), want)
	}
	if want := "Dependency " + g2 + "-0 raised ValueError('x')"; j.Err.Exception().Text() != want {
		t.Errorf("Go's ChordError %q, want %q", j.Err.Exception().Text(), want)
	}
}

// pyStream runs the Python script and delivers its JSON lines as they come.
func pyStream(t *testing.T, ctx context.Context, stdin any, args ...string) <-chan map[string]any {
	t.Helper()
	py := testenv.Python(t, "celery", "msgpack")
	cmd := exec.CommandContext(ctx, py, append([]string{"testdata/celery_backend.py"}, args...)...)
	in, _ := json.Marshal(stdin)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan map[string]any, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("python printed %q", sc.Text())
				continue
			}
			lines <- m
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("python: %v\n%s", err, stderr.String())
		}
	}()
	return lines
}
