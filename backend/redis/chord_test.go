package redis

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/celeriac/celeriac/broker"
)

func intp(i int) *int { return &i }

// TestChordJoinOnce completes a chord's parts concurrently, in random
// order: exactly one caller sees Ready, with the results in header order.
func TestChordJoinOnce(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{Expires: time.Minute})
	ctx := testCtx(t, 30*time.Second)
	for round := range 10 {
		gid := newID(t)
		const n = 8
		if err := b.SetChordSize(ctx, gid, n); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		joins := make(chan *ChordJoin, n)
		for _, i := range rand.Perm(n) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				j, err := b.ChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: fmt.Sprintf("%s-%d", gid, i),
					GroupIndex: intp(i), State: broker.StateSuccess, Result: int64(i * 10)})
				if err != nil {
					t.Error(err)
					return
				}
				joins <- j
			}()
		}
		wg.Wait()
		close(joins)
		var ready []*ChordJoin
		for j := range joins {
			if !j.Added || j.Size != n {
				t.Errorf("round %d: join %+v", round, j)
			}
			if j.Ready {
				ready = append(ready, j)
			}
		}
		if len(ready) != 1 {
			t.Fatalf("round %d: %d callers saw the chord ready, want 1", round, len(ready))
		}
		want := []any{int64(0), int64(10), int64(20), int64(30), int64(40), int64(50), int64(60), int64(70)}
		if diff := cmp.Diff(want, ready[0].Results); diff != "" || ready[0].Err != nil {
			t.Errorf("round %d: results (-want +got):\n%s err %v", round, diff, ready[0].Err)
		}
		if err := b.ChordCleanup(ctx, gid); err != nil {
			t.Fatal(err)
		}
		j, s, tk := chordKeys(gid)
		if n, _ := b.Client().Exists(ctx, j, s, tk).Result(); n != 0 {
			t.Errorf("%d chord keys left after cleanup", n)
		}
	}
}

func TestChordKeysAsCelery(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{Expires: time.Minute})
	ctx := testCtx(t, 10*time.Second)
	gid := newID(t)
	if err := b.SetChordSize(ctx, gid, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: "t1", State: broker.StateSuccess, Result: int64(1)}); err != nil {
		t.Fatal(err)
	}
	j, _, s := chordKeys(gid)
	if v, _ := b.Client().Get(ctx, s).Result(); v != "3" {
		t.Errorf(".s = %q, want \"3\"", v)
	}
	z, err := b.Client().ZRangeWithScores(ctx, j, 0, -1).Result()
	if err != nil || len(z) != 1 {
		t.Fatalf(".j = %v, %v", z, err)
	}
	if z[0].Member != `[1, "t1", "SUCCESS", 1]` || z[0].Score < 1e308 {
		t.Errorf(".j member %q score %v; want Celery's JSON and +inf", z[0].Member, z[0].Score)
	}
	if ttl, _ := b.Client().TTL(ctx, j).Result(); ttl <= 0 || ttl > time.Minute {
		t.Errorf(".j TTL %v", ttl)
	}
}

func TestChordFailure(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{})
	ctx := testCtx(t, 10*time.Second)
	gid := newID(t)
	if err := b.SetChordSize(ctx, gid, 3); err != nil {
		t.Fatal(err)
	}
	parts := []ChordPart{
		{TaskID: "a", GroupIndex: intp(0), State: broker.StateSuccess, Result: int64(1)},
		{TaskID: "b", GroupIndex: intp(1), State: broker.StateFailure,
			Result: &broker.ExceptionInfo{Type: "ValueError", Message: []any{"x"}, Module: "builtins"}},
		{TaskID: "c", GroupIndex: intp(2), State: broker.StateSuccess, Result: int64(3)},
	}
	var last *ChordJoin
	for _, p := range parts {
		p.GroupID = gid
		j, err := b.ChordPartReturn(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		last = j
	}
	if !last.Ready || last.Err == nil || last.Results != nil {
		t.Fatalf("join %+v", last)
	}
	if last.Err.Message != "Dependency b raised ValueError('x')" || last.Err.TaskID != "b" {
		t.Errorf("ChordError %q", last.Err.Message)
	}
	exc := last.Err.Exception()
	if exc.Type != "ChordError" || exc.Module != "celery.exceptions" || exc.Text() != last.Err.Message {
		t.Errorf("body exception %+v", exc)
	}
}

// TestChordAdjustAndRedelivery: AddToChord raises the expected count, and
// a part recorded twice is reported as not Added and does not count.
func TestChordAdjustAndRedelivery(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{})
	ctx := testCtx(t, 10*time.Second)
	gid := newID(t)
	part := func(i int) ChordPart {
		return ChordPart{GroupID: gid, TaskID: fmt.Sprint(i), GroupIndex: intp(i), State: broker.StateSuccess, Result: int64(i)}
	}
	// Parts finishing before the size is known never fire.
	if j, err := b.ChordPartReturn(ctx, part(0)); err != nil || j.Ready || j.Size != 0 {
		t.Fatalf("before size: %+v %v", j, err)
	}
	if err := b.SetChordSize(ctx, gid, 2); err != nil {
		t.Fatal(err)
	}
	if err := b.AddToChord(ctx, gid); err != nil {
		t.Fatal(err)
	}
	j, err := b.ChordPartReturn(ctx, part(1))
	if err != nil || j.Ready || j.Count != 2 || j.Size != 3 {
		t.Fatalf("second part: %+v %v", j, err)
	}
	j, err = b.ChordPartReturn(ctx, part(1))
	if err != nil || j.Added || j.Ready || j.Count != 2 {
		t.Fatalf("redelivered part: %+v %v", j, err)
	}
	j, err = b.ChordPartReturn(ctx, part(2))
	if err != nil || !j.Ready {
		t.Fatalf("last part: %+v %v", j, err)
	}
	if diff := cmp.Diff([]any{int64(0), int64(1), int64(2)}, j.Results); diff != "" {
		t.Error(diff)
	}
}

// TestChordSavedHeader: when the sender saved the header group (nested
// groups), the join follows its structure, as Celery's join_native does.
func TestChordSavedHeader(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{})
	ctx := testCtx(t, 10*time.Second)
	gid := newID(t)
	ids := []string{newID(t), newID(t), newID(t)}
	tree := ResultNode{ID: gid, Group: true, Children: []ResultNode{
		{ID: ids[0]}, {ID: gid + "-sub", Group: true, Children: []ResultNode{{ID: ids[1]}, {ID: ids[2]}}},
	}}
	if err := b.SaveGroup(ctx, tree); err != nil {
		t.Fatal(err)
	}
	if err := b.SetChordSize(ctx, gid, 3); err != nil {
		t.Fatal(err)
	}
	var j *ChordJoin
	for i, id := range ids {
		if err := b.Store(ctx, success(id, fmt.Sprint("r", i))); err != nil {
			t.Fatal(err)
		}
		var err error
		j, err = b.ChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: id, GroupIndex: intp(i), State: broker.StateSuccess, Result: fmt.Sprint("r", i)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !j.Ready {
		t.Fatal("not ready")
	}
	if diff := cmp.Diff([]any{"r0", []any{"r1", "r2"}}, j.Results); diff != "" {
		t.Error(diff)
	}
}

func TestGroupSaveRestore(t *testing.T) {
	t.Parallel()
	for _, ser := range []string{"json", "msgpack"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, Config{Serializer: ser})
			ctx := testCtx(t, 10*time.Second)
			gid := newID(t)
			if _, err := b.RestoreGroup(ctx, gid); !errors.Is(err, ErrGroupNotFound) {
				t.Errorf("restore of an unsaved group: %v", err)
			}
			g := ResultNode{ID: gid, Group: true, Children: []ResultNode{{ID: "a"}, {ID: "b", Parent: &ResultNode{ID: "a"}}}}
			if err := b.SaveGroup(ctx, g); err != nil {
				t.Fatal(err)
			}
			got, err := b.RestoreGroup(ctx, gid)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(g, got); diff != "" {
				t.Error(diff)
			}
			if err := b.SaveGroup(ctx, ResultNode{ID: "x"}); err == nil {
				t.Error("SaveGroup of a task node succeeded")
			}
			if err := b.DeleteGroup(ctx, gid); err != nil {
				t.Fatal(err)
			}
			if _, err := b.RestoreGroup(ctx, gid); !errors.Is(err, ErrGroupNotFound) {
				t.Errorf("after delete: %v", err)
			}
		})
	}
}
