// Command greeter is the tour's Go service behind forward auth: nginx asks
// `celeriac sessions` whether the request carries a logged-in Django
// session and, if so, passes it here with X-User-Id set. The service never
// sees the cookie or the password hash; it trusts the header, so it must
// listen where only nginx reaches it (loopback here).
//
//	greeter --listen 127.0.0.1:8001 --database postgres://postgres@127.0.0.1:6432/tour
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "greeter:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("greeter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8001", "address to serve /app/ on")
	database := fs.String("database", os.Getenv("DATABASE_URL"), "PostgreSQL URL of the Django database (env DATABASE_URL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *database == "" {
		return errors.New("--database (or DATABASE_URL) is required")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	// Simple protocol: the statements go through dbproxy's transaction
	// pooling, where a named prepared statement may meet another server.
	cfg, err := pgxpool.ParseConfig(*database)
	if err != nil {
		return fmt.Errorf("--database: %w", err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("--database: %w", err)
	}
	defer db.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(db, log), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("greeter listening", "addr", ln.Addr().String())
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-done
	return err
}

var page = template.Must(template.New("hello").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hello from Go</title></head>
<body><h1 id="greeting">Hello, {{.Username}}!</h1>
<p>This page comes from a Go service. nginx let you through because
<code>celeriac sessions</code> found your Django session (user id <span id="user-id">{{.ID}}</span>).</p>
<p><a href="/">Back to the Django site</a></p></body></html>
`))

// handler serves /app/hello for the user nginx names in X-User-Id.
func handler(db *pgxpool.Pool, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /app/hello", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.Header.Get("X-User-Id"), 10, 64)
		if err != nil {
			// Not through nginx's auth_request: nobody to greet.
			http.Error(w, "no authenticated user", http.StatusUnauthorized)
			return
		}
		var username string
		err = db.QueryRow(r.Context(), "SELECT username FROM auth_user WHERE id = $1", id).Scan(&username)
		if errors.Is(err, pgx.ErrNoRows) {
			http.Error(w, "unknown user", http.StatusForbidden)
			return
		}
		if err != nil {
			log.Error("user lookup", "user_id", id, "error", err)
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "private, no-store")
		_ = page.Execute(w, struct {
			Username string
			ID       int64
		}{username, id})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	return mux
}
