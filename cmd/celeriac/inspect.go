package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/worker"
)

func init() {
	register("inspect", "ask workers (Go or Python) over remote control, like celery inspect", runInspect)
}

// inspectMethods are the read-only commands, with the arguments Celery's
// CLI sends.
var inspectMethods = map[string]map[string]any{
	"ping": {}, "active": {}, "reserved": {}, "scheduled": {}, "revoked": {}, "stats": {},
	"registered": {"taskinfoitems": []any{}}, "active_queues": {}, "conf": {"with_defaults": false},
}

func runInspect(ctx context.Context, e *env, args []string) error {
	var conn connFlags
	var dest string
	var timeout time.Duration
	var asJSON bool
	fs := newFlagSet(e, "inspect", "METHOD [flags]   (ping, active, reserved, scheduled, registered, stats, revoked, active_queues, conf)")
	conn.register(fs, e)
	for _, n := range []string{"d", "destination"} {
		fs.StringVar(&dest, n, "", "comma-separated node names to ask (default: all); %h, %n, %d expand as in worker -n, so 'celeriac@%h' is this host's worker")
	}
	for _, n := range []string{"t", "timeout"} {
		fs.DurationVar(&timeout, n, time.Second, "how long to wait for replies")
	}
	fs.BoolVar(&asJSON, "json", false, "print the replies as one JSON object")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	method := pos[0]
	margs, ok := inspectMethods[method]
	if !ok {
		return fmt.Errorf("unknown inspect method %q", method)
	}
	log, err := conn.logger(e.stderr)
	if err != nil {
		return err
	}
	b, err := broker.Open(ctx, conn.brokerURL, broker.Options{Logger: log, Name: "celeriac inspect", ConnectTimeout: conn.connTimeout})
	if err != nil {
		return fmt.Errorf("broker %s: %w", redactList(conn.brokerURL), err)
	}
	defer b.Close()
	var nodes []string
	for _, n := range splitList(dest) {
		x, err := worker.ExpandHostname(n)
		if err != nil {
			return fmt.Errorf("--destination: %w", err)
		}
		nodes = append(nodes, x)
	}
	replies, err := broker.NewControl(b).Call(ctx, method, margs, nodes, timeout)
	if err != nil {
		return err
	}
	if asJSON {
		out, _ := json.Marshal(replies)
		fmt.Fprintln(e.stdout, string(out))
	} else {
		printReplies(e, method, replies)
	}
	if len(replies) == 0 {
		return fmt.Errorf("no nodes replied within %v", timeout)
	}
	for _, n := range nodes {
		if _, ok := replies[n]; !ok {
			return fmt.Errorf("node %s did not reply within %v", n, timeout)
		}
	}
	return nil
}

// printReplies prints replies the way `celery inspect` does.
func printReplies(e *env, method string, replies map[string]any) {
	names := make([]string, 0, len(replies))
	for n := range replies {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := replies[n]
		if m, ok := r.(map[string]any); ok && method == "ping" {
			if v, ok := m["ok"]; ok {
				fmt.Fprintf(e.stdout, "->  %s: OK\n        %v\n", n, v)
				continue
			}
		}
		out, _ := json.MarshalIndent(r, "        ", "  ")
		fmt.Fprintf(e.stdout, "->  %s: OK\n        %s\n", n, strings.TrimSpace(string(out)))
	}
	fmt.Fprintf(e.stdout, "\n%d node%s online.\n", len(replies), map[bool]string{true: "", false: "s"}[len(replies) == 1])
}
