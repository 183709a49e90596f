package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/celeriac/celeriac/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestHandler checks what the greeter answers for each X-User-Id nginx
// could pass, against an auth_user table in a schema of its own.
func TestHandler(t *testing.T) {
	ctx := context.Background()
	pgURL := testenv.PostgresURL(t)
	schema := testenv.Prefix(t)
	admin, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		testenv.Unavailable(t, "postgres: %v", err)
	}
	defer admin.Close(ctx)
	ident := pgx.Identifier{schema}.Sanitize()
	for _, q := range []string{
		"CREATE SCHEMA " + ident,
		"CREATE TABLE " + ident + ".auth_user (id bigint PRIMARY KEY, username text NOT NULL)",
		"INSERT INTO " + ident + ".auth_user VALUES (7, 'alice <admin>')",
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA "+ident+" CASCADE") })

	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := handler(db, slog.New(slog.DiscardHandler))

	tests := []struct {
		name, userID string
		status       int
		body         string
	}{
		{name: "known user, escaped", userID: "7", status: 200, body: "Hello, alice &lt;admin&gt;!"},
		{name: "no header", userID: "", status: 401, body: "no authenticated user"},
		{name: "not a number", userID: "7; DROP TABLE auth_user", status: 401},
		{name: "unknown user", userID: "8", status: 403, body: "unknown user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/app/hello", nil)
			if tc.userID != "" {
				req.Header.Set("X-User-Id", tc.userID)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.status || !strings.Contains(string(body), tc.body) {
				t.Fatalf("%d %q; want %d containing %q", rec.Code, body, tc.status, tc.body)
			}
		})
	}

	// The database gone: 503, so nginx shows an error, not a wrong page.
	db.Close()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/app/hello", nil)
	req.Header.Set("X-User-Id", "7")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("with the database closed: %d, want 503", rec.Code)
	}
}
