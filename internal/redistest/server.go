package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/internal/testenv"
)

// Server is one redis-server process.
type Server struct {
	Port int
	Addr string // 127.0.0.1:port
	Dir  string

	t    testing.TB
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   sync.Mutex
	dead bool
	done chan struct{}
}

// URL is redis://127.0.0.1:port/0.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Start runs redis-server on port with extra config arguments
// ("--appendonly", "yes", …) and waits until it answers PING.
func Start(t testing.TB, port int, args ...string) *Server {
	t.Helper()
	s := launch(t, port, false, args...)
	s.waitPing(t)
	return s
}

func launch(t testing.TB, port int, sentinel bool, args ...string) *Server {
	t.Helper()
	bin := testenv.Program(t, "redis-server")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c.Close()
		t.Fatalf("redistest: port %d is already in use (a server left over from an earlier run?)", port)
	}
	dir := t.TempDir()
	var argv []string
	if sentinel {
		conf := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(conf, []byte(strings.Join(args, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		argv = []string{conf, "--sentinel", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir}
	} else {
		argv = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"}, args...)
	}
	s := &Server{Port: port, Addr: addr, Dir: dir, t: t, log: &bytes.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, argv...)
	s.cmd.Stdout, s.cmd.Stderr = &syncWriter{w: s.log, mu: &s.mu}, &syncWriter{w: s.log, mu: &s.mu}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("redistest: start redis-server on %d: %v", port, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Kill)
	return s
}

type syncWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// Log returns what the server printed so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *Server) waitPing(t testing.TB) {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	err := Eventually(10*time.Second, func() error {
		select {
		case <-s.done:
			return errStop
		default:
		}
		return c.Ping(context.Background()).Err()
	})
	if err != nil {
		t.Fatalf("redistest: redis-server on %d did not answer: %v\n%s", s.Port, err, s.Log())
	}
}

// Kill stops the server at once (SIGKILL) and waits for it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.dead = true
	s.mu.Unlock()
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Pause stops the process (SIGSTOP) without closing its connections;
// Resume continues it.
func (s *Server) Pause()  { _ = s.cmd.Process.Signal(syscall.SIGSTOP) }
func (s *Server) Resume() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }

var errStop = fmt.Errorf("redistest: process exited")

// Eventually calls f until it returns nil or the deadline passes, pausing
// briefly between calls; it returns f's last error. Used to wait for servers
// to reach a state, never to wait for a fixed time.
func Eventually(within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil || err == errStop || time.Now().After(deadline) {
			return err
		}
		<-tick.C
	}
}
