package django_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// buildPrograms builds the celeriac binary, the example worker and the
// greeter once, into dir.
func buildPrograms(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./cmd/celeriac", "./examples/worker", "./examples/django/greeter")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a server started by the test, logging to a file, stopped (its
// whole process group) at cleanup.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error
}

func startProc(t *testing.T, name, dir string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, logPath: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			out, _ := os.ReadFile(p.logPath)
			t.Logf("--- %s log (%s):\n%s", name, p.logPath, tail(string(out), 4000))
		}
	})
	return p
}

// stop sends sig and waits up to 20 s before killing the process group.
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		// Stuck: SIGQUIT makes a Go program print its goroutines into
		// the log (and nginx and gunicorn stop at once), then kill.
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.exited:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	// gunicorn's and nginx's workers go with their master; anything left
	// in the group does not outlive the test.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// waitReady polls check until it returns nil, failing the test at the
// deadline or when the process exits first.
func (p *proc) waitReady(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-p.exited:
			out, _ := os.ReadFile(p.logPath)
			t.Fatalf("%s exited (%v) before it was ready:\n%s", p.name, p.err, tail(string(out), 4000))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: %v", p.name, timeout, err)
		}
	}
}

// httpOK checks that GET url answers with one of the statuses.
func httpOK(url string, statuses ...int) func() error {
	client := &http.Client{Timeout: 2 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		for _, s := range statuses {
			if resp.StatusCode == s {
				return nil
			}
		}
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
}

// tcpOK checks that addr accepts connections.
func tcpOK(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
}

// logContains checks that the process log holds s.
func (p *proc) logContains(s string) func() error {
	return func() error {
		out, _ := os.ReadFile(p.logPath)
		if !strings.Contains(string(out), s) {
			return fmt.Errorf("%s log has no %q yet", p.name, s)
		}
		return nil
	}
}

// run runs a command to completion, failing the test with its output.
func run(t *testing.T, ctx context.Context, dir string, env []string, bin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, tail(string(out), 4000))
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
