package celerytest

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CLI runs Debian's `celery -A celeryapp ARGS…` (inspect, control, …)
// with the app's configuration and returns what it printed, stdout and
// stderr together. A non-zero exit is returned as an error with the output.
func (a *App) CLI(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, a.python, append([]string{"-m", "celery", "-A", "celeryapp"}, args...)...)
	cmd.Dir, cmd.Env = a.dir, a.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Stream is a long-running celery command whose output lines the test
// waits on, such as `celery events --dump`.
type Stream struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	grew  chan struct{} // closed and replaced when a line arrives
	done  chan struct{}
}

// StartStream starts `celery -A celeryapp ARGS…` and stops it (SIGTERM,
// then SIGKILL) when the test ends.
func (a *App) StartStream(args ...string) *Stream {
	a.t.Helper()
	cmd := exec.Command(a.python, append([]string{"-u", "-m", "celery", "-A", "celeryapp"}, args...)...)
	cmd.Dir, cmd.Env = a.dir, a.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	s := &Stream{cmd: cmd, grew: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("celery %v: %v", args, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			close(s.grew)
			s.grew = make(chan struct{})
			s.mu.Unlock()
		}
	}()
	go func() { _ = cmd.Wait(); pw.Close(); close(s.done) }()
	a.t.Cleanup(s.stop)
	return s
}

// WaitLine waits until a line containing every one of parts has been
// printed, and returns it; ok is false after timeout or process exit.
func (s *Stream) WaitLine(timeout time.Duration, parts ...string) (line string, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		s.mu.Lock()
		for ; seen < len(s.lines); seen++ {
			if containsAll(s.lines[seen], parts) {
				l := s.lines[seen]
				s.mu.Unlock()
				return l, true
			}
		}
		grew := s.grew
		s.mu.Unlock()
		select {
		case <-grew:
		case <-s.done:
			s.mu.Lock()
			n := len(s.lines)
			s.mu.Unlock()
			if seen == n {
				return "", false
			}
		case <-deadline.C:
			return "", false
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// Output returns everything printed so far.
func (s *Stream) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

func (s *Stream) stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}
