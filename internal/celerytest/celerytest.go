// Package celerytest runs Debian's Celery 5.2.6 as the other side of
// celeriac's interop tests: a Python client that sends tasks and reads
// results, and a Python worker process, both configured per test.
package celerytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/celeriac/celeriac/internal/testenv"
)

// App is a Celery application configured for one test.
type App struct {
	t      testing.TB
	python string
	dir    string
	env    []string
}

// Config is the Python side's configuration.
type Config struct {
	Broker      string // CELERY_BROKER_URL
	Backend     string // CELERY_RESULT_BACKEND
	Queue       string // task_default_queue
	Serializer  string // json (default) or msgpack
	Protocol    int    // 2 (default) or 1
	CounterURL  string // redis:// URL for side-effect counters
	CounterHash string // hash the shared tasks count into
	MaxPriority int    // task_queue_max_priority
}

func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata")
}

// New returns the Python Celery app, or stops the test if Debian's
// Celery is missing.
func New(t testing.TB, c Config) *App {
	t.Helper()
	py := testenv.Python(t, "celery", "redis", "msgpack")
	protocol := 2
	if c.Protocol == 1 {
		protocol = 1
	}
	env := append(os.Environ(),
		"CELERY_BROKER_URL="+c.Broker,
		"CELERY_RESULT_BACKEND="+c.Backend,
		"QUEUE="+c.Queue,
		"SERIALIZER="+def(c.Serializer, "json"),
		fmt.Sprintf("PROTOCOL=%d", protocol),
		"COUNTER_REDIS="+c.CounterURL,
		"COUNTER_HASH="+c.CounterHash,
		"PYTHONDONTWRITEBYTECODE=1",
	)
	if c.MaxPriority > 0 {
		env = append(env, fmt.Sprintf("MAX_PRIORITY=%d", c.MaxPriority))
	}
	return &App{t: t, python: py, dir: dir(), env: env}
}

func def(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Outcome is a result as Python's AsyncResult.get() saw it.
type Outcome struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Result     any    `json:"result"`
	ExcType    string `json:"exc_type"`
	ExcModule  string `json:"exc_module"`
	ExcMessage string `json:"exc_message"`
}

func (a *App) run(ctx context.Context, args ...string) []byte {
	a.t.Helper()
	cmd := exec.CommandContext(ctx, a.python, append([]string{"client.py"}, args...)...)
	cmd.Dir, cmd.Env = a.dir, a.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		a.t.Fatalf("python client %v: %v\n%s", args[:min(len(args), 2)], err, stderr.String())
	}
	return out
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Send sends a task from Python (send_task, or apply_async of a task the
// app defines when opts["via"] is "delay") and waits for its result with
// AsyncResult.get(). opts are apply_async keyword arguments, plus "count"
// and "timeout".
func (a *App) Send(name string, args []any, kwargs map[string]any, opts map[string]any) []Outcome {
	a.t.Helper()
	if args == nil {
		args = []any{}
	}
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	if opts == nil {
		opts = map[string]any{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out := a.run(ctx, "send", name, mustJSON(args), mustJSON(kwargs), mustJSON(opts))
	var res []Outcome
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var o Outcome
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			a.t.Fatalf("python output %q: %v", sc.Text(), err)
		}
		res = append(res, o)
	}
	return res
}

// Publish sends count copies of a task from Python without waiting and
// returns their ids.
func (a *App) Publish(name string, args []any, kwargs map[string]any, opts map[string]any) []string {
	a.t.Helper()
	if args == nil {
		args = []any{}
	}
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	if opts == nil {
		opts = map[string]any{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Second)
	defer cancel()
	var ids []string
	if err := json.Unmarshal(a.run(ctx, "publish", name, mustJSON(args), mustJSON(kwargs), mustJSON(opts)), &ids); err != nil {
		a.t.Fatal(err)
	}
	return ids
}

// Exec runs a Python snippet with the app importable (from celeryapp
// import app) and returns what it printed. For the odd check the client
// script has no command for: remote control, events.
func (a *App) Exec(code string) string {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.python, "-c", code)
	cmd.Dir, cmd.Env = a.dir, a.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		a.t.Fatalf("python snippet: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// Get reads a result from Python by id (waiting up to 20 s).
func (a *App) Get(id string) Outcome {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var o Outcome
	if err := json.Unmarshal(a.run(ctx, "get", id), &o); err != nil {
		a.t.Fatal(err)
	}
	return o
}

// Worker is a running `celery worker` process.
type Worker struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
}

// StartWorker starts a Celery worker on the app's queue (threads pool),
// waits until it is ready, and stops it at the end of the test.
func (a *App) StartWorker(extra ...string) *Worker {
	a.t.Helper()
	args := append([]string{"-m", "celery", "-A", "celeryapp", "worker", "--pool", "threads", "-c", "2",
		"-l", "info", "--without-gossip", "--without-mingle", "-n", "py-" + fmt.Sprint(os.Getpid()) + "-%h"}, extra...)
	cmd := exec.Command(a.python, args...)
	cmd.Dir, cmd.Env = a.dir, a.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w := &Worker{cmd: cmd, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			w.mu.Lock()
			w.logs.WriteString(sc.Text() + "\n")
			w.mu.Unlock()
			if strings.Contains(sc.Text(), " ready.") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("starting celery worker: %v", err)
	}
	go func() { w.done <- cmd.Wait(); pw.Close() }()
	a.t.Cleanup(func() { w.Stop() })
	select {
	case <-ready:
	case err := <-w.done:
		a.t.Fatalf("celery worker exited: %v\n%s", err, w.Logs())
	case <-time.After(60 * time.Second):
		a.t.Fatalf("celery worker not ready after 60 s:\n%s", w.Logs())
	}
	return w
}

// Logs returns what the worker printed.
func (w *Worker) Logs() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.String()
}

// Kill kills the worker process group at once (SIGKILL), as a crash or an
// OOM kill would: nothing is restored or acknowledged on the way out.
func (w *Worker) Kill() {
	if w.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case err := <-w.done:
		w.done <- err // Stop returns at once afterwards
	case <-time.After(15 * time.Second):
	}
}

// Stop stops the worker (warm shutdown, then kill) and waits for it.
func (w *Worker) Stop() {
	if w.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		<-w.done
	}
	w.done <- nil // later Stop calls return at once
}
