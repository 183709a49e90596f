package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gopkg.in/yaml.v3"

	"github.com/celeriac/celeriac/dbproxy"
)

func init() {
	register("dbproxy", "pool PostgreSQL connections and split reads to replicas", runDBProxy)
}

// dbproxyShutdownGrace bounds how long clients may take to finish their
// transactions once the command is told to stop.
const dbproxyShutdownGrace = 30 * time.Second

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

type dbproxyFlags struct {
	cfg         dbproxy.Config
	metricsAddr string
}

func runDBProxy(ctx context.Context, e *env, args []string) error {
	f, err := parseDBProxyFlags(e, args)
	if err != nil {
		return err
	}
	log, err := newLogger(e.stderr, e.envOr("CELERIAC_LOG_LEVEL", "info"), e.envOr("CELERIAC_LOG_FORMAT", "text"))
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f.cfg.Logger, f.cfg.Registerer = log, reg
	p, err := dbproxy.New(f.cfg)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	stopHTTP, err := serveHTTP(f.metricsAddr, mux, log)
	if err != nil {
		return err
	}
	defer stopHTTP()
	if err := p.Start(ctx); err != nil {
		return err
	}
	log.Info("dbproxy: listening", "addr", p.Addr().String(), "pool_mode", f.cfg.PoolMode, "replicas", len(f.cfg.Replicas))
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), dbproxyShutdownGrace)
	defer cancel()
	return p.Shutdown(sctx)
}

// parseDBProxyFlags reads --config (YAML with dbproxy.Config's yaml names)
// and lets flags given on the command line override it.
func parseDBProxyFlags(e *env, args []string) (dbproxyFlags, error) {
	fs := newFlagSet(e, "dbproxy", "[--config dbproxy.yaml] [--primary URL] [--replica URL]... [flags]")
	config := fs.String("config", e.getenv("CELERIAC_DBPROXY_CONFIG"), "YAML config file, see examples/dbproxy.yaml (env CELERIAC_DBPROXY_CONFIG)")
	listen := fs.String("listen", "", "address clients connect to (default 127.0.0.1:6432)")
	primary := fs.String("primary", e.getenv("CELERIAC_DBPROXY_PRIMARY"), "primary URL, postgres://user:password@host:port/db (env CELERIAC_DBPROXY_PRIMARY)")
	var replicas repeated
	fs.Var(&replicas, "replica", "replica URL; repeat for several")
	poolMode := fs.String("pool-mode", "", "transaction (default) or session")
	poolSize := fs.Int("pool-size", 0, "server connections per database, user and server (default 20)")
	authFile := fs.String("auth-file", "", "PgBouncer-format userlist: \"user\" \"secret\" per line")
	authType := fs.String("auth-type", "", "scram-sha-256 (default), md5 or trust")
	metrics := fs.String("metrics-listen", "", "serve Prometheus /metrics and /healthz on this address (off when empty)")
	if err := parseFlags(fs, args); err != nil {
		return dbproxyFlags{}, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "celeriac dbproxy: unexpected argument %q\n", fs.Arg(0))
		return dbproxyFlags{}, errUsage
	}
	var f dbproxyFlags
	if *config != "" {
		b, err := os.ReadFile(*config)
		if err != nil {
			return f, fmt.Errorf("--config: %w", err)
		}
		var file struct {
			dbproxy.Config `yaml:",inline"`
			MetricsListen  string `yaml:"metrics_listen"`
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&file); err != nil {
			return f, fmt.Errorf("--config %s: %w", *config, err)
		}
		f.cfg, f.metricsAddr = file.Config, file.MetricsListen
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["listen"] {
		f.cfg.Listen = *listen
	}
	if set["primary"] || f.cfg.Primary == "" {
		f.cfg.Primary = *primary
	}
	if len(replicas) > 0 {
		f.cfg.Replicas = replicas
	}
	if set["pool-mode"] {
		f.cfg.PoolMode = dbproxy.PoolMode(*poolMode)
	}
	if set["pool-size"] {
		f.cfg.PoolSize = *poolSize
	}
	if set["auth-file"] {
		f.cfg.AuthFile = *authFile
	}
	if set["auth-type"] {
		f.cfg.AuthType = *authType
	}
	if set["metrics-listen"] {
		f.metricsAddr = *metrics
	}
	if f.cfg.Primary == "" {
		fmt.Fprintln(e.stderr, "celeriac dbproxy: --primary (or primary: in --config) is required")
		return f, errUsage
	}
	return f, nil
}
