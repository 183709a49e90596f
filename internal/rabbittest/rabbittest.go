// Package rabbittest starts a private RabbitMQ node on loopback for tests
// that must restart or stop the broker without disturbing other tests that
// share the machine's RabbitMQ.
package rabbittest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/celeriac/celeriac/internal/testenv"
)

// Node is one rabbitmq-server node of its own (name, ports, data dir).
type Node struct {
	Name string // Erlang node name, e.g. t123@localhost
	Port int    // AMQP port
	t    testing.TB
	dir  string
	env  []string
}

// URL is the node's AMQP URL (guest/guest, vhost /).
func (n *Node) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d//", n.Port) }

// Start starts a node and waits until it accepts connections; it is
// stopped and its data removed when the test ends.
func Start(t testing.TB) *Node {
	t.Helper()
	server := testenv.Program(t, "rabbitmq-server")
	testenv.Program(t, "rabbitmqctl")
	dir, err := os.MkdirTemp("", "celeriac-rabbit-")
	if err != nil {
		t.Fatal(err)
	}
	// The server drops to the rabbitmq user, which must write here.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	n := &Node{Name: fmt.Sprintf("celeriac%d@localhost", port), Port: port, t: t, dir: dir}
	n.env = append(os.Environ(),
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", port),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", testenv.FreePort(t)),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "none"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "env"),
	)
	cmd := exec.Command(server, "-detached")
	cmd.Env = n.env
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("rabbittest: rabbitmq-server: %v\n%s", err, out)
	}
	t.Cleanup(n.stop)
	n.awaitStartup()
	return n
}

// ctl runs rabbitmqctl against the node.
func (n *Node) ctl(timeout time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-n", n.Name}, args...)...)
	cmd.Env = n.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("rabbitmqctl %v: %w\n%s", args, err, out.String())
	}
	return nil
}

// awaitStartup waits for the node to boot: -detached returns before the
// node has even registered with epmd, so retry until await_startup works.
func (n *Node) awaitStartup() {
	n.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := n.ctl(30*time.Second, "await_startup", "--timeout", "30")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("rabbittest: node %s did not start: %v\n%s", n.Name, err, n.Log())
		}
		time.Sleep(250 * time.Millisecond) // polling a process that has no readiness signal
	}
}

// Restart stops the RabbitMQ application and starts it again (what a
// broker restart looks like to clients: every connection drops, durable
// queues and persistent messages survive).
func (n *Node) Restart() {
	n.t.Helper()
	if err := n.ctl(60*time.Second, "stop_app"); err != nil {
		n.t.Fatal(err)
	}
	if err := n.ctl(60*time.Second, "start_app"); err != nil {
		n.t.Fatal(err)
	}
	n.awaitStartup()
}

// ListQueues returns "name messages_ready messages_unacknowledged" lines.
func (n *Node) ListQueues() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rabbitmqctl", "-n", n.Name, "-q", "list_queues", "name", "messages_ready", "messages_unacknowledged")
	cmd.Env = n.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("rabbitmqctl list_queues: %w\n%s", err, out)
	}
	return string(out), nil
}

// Log returns the node's log for failure messages.
func (n *Node) Log() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "log", n.Name+".log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (n *Node) stop() {
	if err := n.ctl(60*time.Second, "stop"); err != nil {
		n.t.Logf("rabbittest: stop: %v", err)
	}
	os.RemoveAll(n.dir)
}
