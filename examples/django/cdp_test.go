package django_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// browser drives Debian's headless Chromium over the DevTools protocol on
// a pipe (--remote-debugging-pipe): JSON messages ended by a NUL byte, the
// commands on the browser's fd 3, the replies and events on its fd 4. No
// WebSocket, no extra dependency.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	w       io.WriteCloser
	session string // the page's flattened session

	mu      sync.Mutex
	nextID  int
	pending map[int]chan cdpMessage
	events  []cdpMessage
	changed chan struct{} // closed and replaced when events grow
	readErr error
	done    chan struct{} // reader finished
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// startBrowser starts Chromium with one blank page attached.
func startBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	toBrowser, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromR, fromBrowser, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "chromium.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--disable-extensions", "--window-size=1000,760",
		"--user-data-dir="+filepath.Join(t.TempDir(), "profile"), "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{toBrowser, fromBrowser} // fd 3, fd 4
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	toBrowser.Close()
	fromBrowser.Close()
	b := &browser{t: t, cmd: cmd, w: cmdW, pending: map[int]chan cdpMessage{}, changed: make(chan struct{}), done: make(chan struct{})}
	go b.read(fromR)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = b.call(ctx, "", "Browser.close", nil)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers left behind
		cmdW.Close()
		fromR.Close()
		<-b.done
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			var keep []string
			for _, l := range strings.Split(string(out), "\n") {
				if !strings.Contains(l, "dbus") { // no system bus here: noise
					keep = append(keep, l)
				}
			}
			t.Logf("chromium log:\n%s", tail(strings.Join(keep, "\n"), 3000))
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var target struct{ TargetID string }
	if err := b.callInto(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	var att struct{ SessionID string }
	if err := b.callInto(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	b.session = att.SessionID
	if _, err := b.call(ctx, b.session, "Page.enable", nil); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return b
}

func (b *browser) read(r io.Reader) {
	defer close(b.done)
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		raw, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.readErr = fmt.Errorf("chromium closed the pipe: %w", err)
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			close(b.changed)
			b.changed = nil
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(raw[:len(raw)-1], &m); err != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				ch <- m
				delete(b.pending, m.ID)
			}
		} else {
			b.events = append(b.events, m)
			close(b.changed)
			b.changed = make(chan struct{})
		}
		b.mu.Unlock()
	}
}

func (b *browser) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return nil, b.readErr
	}
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg, err := json.Marshal(cdpMessage{ID: id, Method: method, SessionID: session, Params: mustJSON(params)})
	if err != nil {
		return nil, err
	}
	if _, err := b.w.Write(append(msg, 0)); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: chromium went away", method)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func mustJSON(v any) json.RawMessage {
	if v == nil {
		return json.RawMessage("{}")
	}
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return raw
}

func (b *browser) callInto(ctx context.Context, session, method string, params, dst any) error {
	raw, err := b.call(ctx, session, method, params)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, dst)
}

// mark is a position in the event log: waitEvent looks only after it, so
// take it before the action that causes the event.
func (b *browser) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events)
}

func (b *browser) waitEvent(ctx context.Context, from int, method string) error {
	for {
		b.mu.Lock()
		for _, e := range b.events[from:] {
			if e.Method == method && e.SessionID == b.session {
				b.mu.Unlock()
				return nil
			}
		}
		from = len(b.events)
		changed, err := b.changed, b.readErr
		b.mu.Unlock()
		if err != nil {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", method, ctx.Err())
		}
	}
}

// navigate loads url in the page and waits for its load event.
func (b *browser) navigate(ctx context.Context, url string) {
	b.t.Helper()
	from := b.mark()
	var res struct{ ErrorText string }
	if err := b.callInto(ctx, b.session, "Page.navigate", map[string]any{"url": url}, &res); err != nil {
		b.t.Fatal(err)
	}
	if res.ErrorText != "" {
		b.t.Fatalf("navigate %s: %s", url, res.ErrorText)
	}
	if err := b.waitEvent(ctx, from, "Page.loadEventFired"); err != nil {
		b.t.Fatalf("navigate %s: %v", url, err)
	}
}

// eval runs a JavaScript expression in the page and returns its value as
// a string (JSON for anything else).
func (b *browser) eval(ctx context.Context, expr string) string {
	b.t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.callInto(ctx, b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res); err != nil {
		b.t.Fatal(err)
	}
	if d := res.ExceptionDetails; d != nil {
		b.t.Fatalf("eval %s: %s %s", expr, d.Text, d.Exception.Description)
	}
	if s, ok := res.Result.Value.(string); ok {
		return s
	}
	raw, _ := json.Marshal(res.Result.Value)
	return string(raw)
}

// submit runs expr (which submits a form) and waits for the next page.
func (b *browser) submit(ctx context.Context, expr string) {
	b.t.Helper()
	from := b.mark()
	b.eval(ctx, expr)
	if err := b.waitEvent(ctx, from, "Page.loadEventFired"); err != nil {
		b.t.Fatalf("after %s: %v", expr, err)
	}
}

// screenshot saves the page as a PNG at path.
func (b *browser) screenshot(ctx context.Context, path string) {
	b.t.Helper()
	var res struct{ Data string }
	if err := b.callInto(ctx, b.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &res); err != nil {
		b.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if !strings.HasPrefix(string(png), "\x89PNG") {
		b.t.Fatal("screenshot is not a PNG")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
