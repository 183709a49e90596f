package redis

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/celeriac/celeriac/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newBackend opens a backend on the shared test Redis (or cfg.URL) with a
// short expiry, closed when the test ends.
func newBackend(t testing.TB, cfg Config) *Backend {
	t.Helper()
	if cfg.URL == "" && cfg.Client == nil {
		cfg.URL = testenv.RedisURL(t)
	}
	if cfg.Expires == 0 {
		cfg.Expires = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var idSeq atomic.Int64

// newID returns a task id unique to this test run.
func newID(t testing.TB) string {
	return fmt.Sprintf("%s-%d", testenv.Prefix(t), idSeq.Add(1))
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pyRun runs testdata/celery_backend.py with stdin and returns its JSON lines.
func pyRun(t testing.TB, ctx context.Context, stdin any, args ...string) []map[string]any {
	t.Helper()
	py := testenv.Python(t, "celery", "msgpack")
	cmd := exec.CommandContext(ctx, py, append([]string{"testdata/celery_backend.py"}, args...)...)
	if stdin != nil {
		in, err := json.Marshal(stdin)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = bytes.NewReader(in)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return parseLines(t, out)
}

func parseLines(t testing.TB, out []byte) []map[string]any {
	t.Helper()
	var res []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("python printed %q: %v", sc.Text(), err)
		}
		res = append(res, m)
	}
	return res
}
