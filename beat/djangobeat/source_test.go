package djangobeat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/celeriac/celeriac/beat"
	"github.com/celeriac/celeriac/beat/schedule"
	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/broker/memory"
	"github.com/celeriac/celeriac/internal/redisurl"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// djangoDB is a throwaway database with django-celery-beat's tables,
// created by Debian's Django migrations.
type djangoDB struct {
	t     *testing.T
	py    string
	env   []string
	url   string
	queue string
}

func newDjangoDB(t *testing.T) *djangoDB {
	t.Helper()
	py := testenv.Python(t, "django", "django_celery_beat", "psycopg2")
	admin := testenv.PostgresURL(t)
	name := testenv.Prefix(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		testenv.Unavailable(t, "postgres: %v", err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	u, _ := url.Parse(admin)
	db := &djangoDB{t: t, py: py, queue: name}
	db.env = append(os.Environ(), "CELERIAC_DJANGO_DB_NAME="+name, "CELERIAC_DJANGO_DB_HOST="+u.Hostname(),
		"CELERIAC_DJANGO_DB_PORT="+u.Port(), "CELERIAC_DJANGO_DB_USER="+u.User.Username(), "CELERIAC_DJANGO_QUEUE="+name)
	u.Path = "/" + name
	db.url = u.String()
	db.django("migrate")
	return db
}

func (d *djangoDB) django(args ...string) []byte {
	d.t.Helper()
	cmd := exec.Command(d.py, append([]string{"testdata/djangobeat_fixture.py"}, args...)...)
	cmd.Env = d.env
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		d.t.Fatalf("django %v: %v\n%s", args, err, stderr)
	}
	return out
}

type taskState struct {
	Enabled       bool    `json:"enabled"`
	TotalRunCount int     `json:"total_run_count"`
	LastRunAt     *string `json:"last_run_at"`
}

func (d *djangoDB) dump() map[string]taskState {
	d.t.Helper()
	var m map[string]taskState
	if err := json.Unmarshal(d.django("dump"), &m); err != nil {
		d.t.Fatal(err)
	}
	return m
}

func waitUntil(t *testing.T, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling to a deadline
	}
}

func TestEntriesFromTheRealSchema(t *testing.T) {
	db := newDjangoDB(t)
	db.django("initial")
	ctx := context.Background()
	src, err := New(ctx, Config{URL: db.url})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	es, err := src.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]beat.Entry{}
	for _, e := range es {
		by[e.Name] = e
	}
	if _, ok := by["disabled"]; ok || len(by) != 5 {
		t.Fatalf("entries %v", by)
	}
	iv := by["interval"]
	if ev, ok := iv.Schedule.(*schedule.Every); !ok || ev.Interval != time.Second {
		t.Errorf("interval schedule %v", iv.Schedule)
	}
	if iv.Task != "tasks.interval" || len(iv.Args) != 2 || iv.Kwargs["a"] != "b" || *iv.Options.Priority != 3 ||
		iv.Options.Headers["x-origin"] != "django" || iv.Options.Expires != 30*time.Second || iv.Options.Queue != db.queue {
		t.Errorf("interval entry %+v", iv)
	}
	if c, ok := by["nightly"].Schedule.(*schedule.Crontab); !ok || c.Loc.String() != "Europe/London" || c.Orig[2] != "mon-fri" {
		t.Errorf("nightly %v", by["nightly"].Schedule)
	}
	if s, ok := by["sunset"].Schedule.(*schedule.Solar); !ok || s.Lat != 51.5 || s.Lon != -0.12 {
		t.Errorf("sunset %v", by["sunset"].Schedule)
	}
	if !by["clocked"].OneOff || by["later"].StartTime.Before(time.Now()) {
		t.Errorf("clocked %+v later %+v", by["clocked"], by["later"])
	}
	v1, err := src.Version(ctx)
	if err != nil || v1 == "" {
		t.Fatalf("version %q %v", v1, err)
	}
	db.django("add", "extra")
	if v2, _ := src.Version(ctx); v2 == v1 {
		t.Error("version did not change after an ORM insert")
	}
}

// Beat fires django's tasks, notices changes without a restart, and
// writes the run history back.
func TestBeatRunsDjangoTasks(t *testing.T) {
	db := newDjangoDB(t)
	db.django("initial")
	ctx := context.Background()
	src, err := New(ctx, Config{URL: db.url})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rdb, err := redisurl.NewClient(testenv.RedisURL(t), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	srv := memory.NewServer()
	p, err := broker.NewProducer(broker.ProducerConfig{Broker: srv.Connect()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	fired := map[string]int{}
	b, err := beat.New(beat.Config{
		Producer: p, Redis: rdb, Prefix: db.queue + ":", Source: src, SyncInterval: 100 * time.Millisecond,
		LeaseTTL: time.Second,
		OnDispatch: func(d beat.Dispatch) {
			mu.Lock()
			fired[d.Entry]++
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(ctx)
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return fired[name]
	}
	waitUntil(t, 15*time.Second, "interval to fire twice and clocked once", func() bool {
		return count("interval") >= 2 && count("clocked") >= 1
	})

	// The message is an ordinary task message with the row's options.
	c, err := srv.Connect().Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{broker.TaskQueue(db.queue)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(ctx)
	names := map[string]bool{}
	for range 3 {
		d := <-c.Deliveries()
		task, err := broker.DecodeTask(d.Message)
		if err != nil {
			t.Fatal(err)
		}
		names[task.Name] = true
		if task.Name == "tasks.interval" && (task.Priority != 3 || task.Expires == nil || d.Message.Headers["x-origin"] != "django") {
			t.Errorf("interval message %+v headers %v", task, d.Message.Headers)
		}
	}
	if !names["tasks.interval"] || !names["tasks.clocked"] {
		t.Errorf("messages %v", names)
	}

	// A task added through the ORM runs without a restart; one disabled stops.
	db.django("add", "added")
	waitUntil(t, 15*time.Second, "the added task to fire", func() bool { return count("added") >= 1 })
	st := db.dump()
	if st["interval"].TotalRunCount < 2 || st["interval"].LastRunAt == nil {
		t.Errorf("interval history %+v", st["interval"])
	}
	if c := st["clocked"]; c.Enabled || c.TotalRunCount != 0 {
		t.Errorf("one-off clocked task after its run %+v (want disabled, count reset)", c)
	}
	db.django("disable", "interval")
	waitUntil(t, 15*time.Second, "the disabled task to leave the schedule", func() bool {
		for _, e := range b.Entries() {
			if e.Name == "interval" {
				return false
			}
		}
		return true
	})

	if count("clocked") != 1 || count("disabled") != 0 || count("later") != 0 {
		t.Errorf("fired %v", fired)
	}
	if n, _ := b.RunCount(ctx, "interval"); int(n) != count("interval") {
		t.Errorf("redis run count %d, fired %d", n, count("interval"))
	}
	t.Logf("fired %v", fmt.Sprint(fired))
}
