// Package deploy_test checks the container and Kubernetes files against the
// binary they run: no container engine runs here, so the test builds the
// static binary the Dockerfile builds and makes it parse every command
// line the files give it.
package deploy_test

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildStatic builds the binary as the Dockerfile does, once per run.
func buildStatic(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "celeriac-deploy"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "celeriac")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", binPath, "github.com/celeriac/celeriac/cmd/celeriac")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// TestBinaryIsStatic: the distroless/static image has no libc.
func TestBinaryIsStatic(t *testing.T) {
	bin := buildStatic(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("binary has a dynamic loader (PT_INTERP): not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("binary links %v", libs)
	}
}

// parses runs the binary with args plus -h: every flag before -h must be
// accepted for it to print usage and exit 0.
func parses(t *testing.T, bin string, args []string) {
	t.Helper()
	cmd := exec.Command(bin, append(args, "-h")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("celeriac %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Errorf("celeriac %s -h did not exit", strings.Join(args, " "))
	}
}

func readYAMLDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
	return docs
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func TestComposeCommandsParse(t *testing.T) {
	bin := buildStatic(t)
	doc := readYAMLDocs(t, "docker-compose.yml")[0]
	services := doc["services"].(map[string]any)
	for _, name := range []string{"worker", "beat"} {
		svc, ok := services[name].(map[string]any)
		if !ok {
			t.Fatalf("compose has no %s service", name)
		}
		args := strs(svc["command"])
		if args[0] == "beat" {
			if _, err := os.Stat(filepath.Join("..", "beat.yaml")); err != nil {
				t.Errorf("beat mounts ../beat.yaml: %v", err)
			}
			// The schedule path is the container's; check flag parsing only.
			args = []string{"beat"}
		}
		parses(t, bin, args)
	}
	w := services["worker"].(map[string]any)
	grace, _ := time.ParseDuration(w["stop_grace_period"].(string))
	shut, _ := time.ParseDuration(flagValue(strs(w["command"]), "--shutdown-timeout"))
	if grace <= shut {
		t.Errorf("stop_grace_period %v must exceed --shutdown-timeout %v", grace, shut)
	}
}

func TestKubernetesWorker(t *testing.T) {
	bin := buildStatic(t)
	var dep map[string]any
	for _, d := range readYAMLDocs(t, filepath.Join("kubernetes", "worker.yaml")) {
		if d["kind"] == "Deployment" {
			dep = d
		}
	}
	pod := dep["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	c := pod["containers"].([]any)[0].(map[string]any)
	args := strs(c["args"])
	parses(t, bin, args)
	httpAddr := flagValue(args, "--http")
	port := c["ports"].([]any)[0].(map[string]any)["containerPort"].(int)
	if !strings.HasSuffix(httpAddr, ":"+strconv.Itoa(port)) {
		t.Errorf("--http %s does not serve containerPort %d", httpAddr, port)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		got := c[probe].(map[string]any)["httpGet"].(map[string]any)["path"]
		if got != path {
			t.Errorf("%s path %v, want %s (the worker serves it)", probe, got, path)
		}
	}
	shut, _ := time.ParseDuration(flagValue(args, "--shutdown-timeout"))
	grace := time.Duration(pod["terminationGracePeriodSeconds"].(int)) * time.Second
	if grace <= shut {
		t.Errorf("terminationGracePeriodSeconds %v must exceed --shutdown-timeout %v", grace, shut)
	}
	for _, f := range []string{"autoscaling.yaml", "beat.yaml"} {
		if docs := readYAMLDocs(t, filepath.Join("kubernetes", f)); len(docs) == 0 {
			t.Errorf("%s is empty", f)
		}
	}
}

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{"CGO_ENABLED=0", "USER nonroot", `ENTRYPOINT ["/usr/local/bin/celeriac"]`, "distroless/static"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The HEALTHCHECK and CMD command lines must parse.
	bin := buildStatic(t)
	for _, re := range []string{`CMD \["/usr/local/bin/celeriac", (.*)\]`, `\nCMD \[(.*)\]`} {
		m := regexp.MustCompile(re).FindStringSubmatch(df)
		if m == nil {
			t.Fatalf("no match for %s", re)
		}
		var args []string
		for _, p := range strings.Split(m[1], ",") {
			args = append(args, strings.Trim(strings.TrimSpace(p), `"`))
		}
		parses(t, bin, args)
	}
}
