// Package forwardauth is an HTTP service that tells a reverse proxy whether
// a request carries a logged-in Django session: the target of nginx's
// auth_request and Caddy's forward_auth.
//
// For every request to /auth it reads the session cookie, loads the session
// from the configured Django store (package sessions) and checks the login
// as Django's get_user does, against the user's current password hash and
// is_active. A valid login answers 200 with
//
//	X-User-Id:      the user's primary key
//	X-Session-Hash: SHA-256 hex of the session key, a non-secret handle
//	                for logs and rate limits (the key itself never leaves
//	                the service). With signed_cookies the "key" is the
//	                cookie, so the hash changes whenever Django re-signs it.
//
// and anything else 401. A failing store or database answers 503, so an
// outage is not mistaken for a logout. /healthz answers 200 while serving.
//
// Usage:
//
//	srv, err := forwardauth.New(forwardauth.Config{Addr: "127.0.0.1:8081", Store: store, Users: users})
//	if err := srv.Start(ctx); err != nil { ... }
//	<-ctx.Done()
//	err = srv.Shutdown(context.WithoutCancel(ctx))
//
// examples/nginx in the repository shows the nginx side.
package forwardauth
