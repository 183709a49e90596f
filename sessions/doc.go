// Package sessions lets Go services share a Django site's logins: it reads
// and writes Django sessions in every stock SESSION_ENGINE and checks a
// session's login exactly as django.contrib.auth.get_user does, so a user
// who signed in on the Django site is recognised by Go code without a
// second login, and a password change or logout on the Django side ends
// the login in Go as well.
//
// The pieces:
//
//   - Store (NewStore): load and save sessions in the signed_cookies, db
//     (django_session in PostgreSQL), cache (django-redis or
//     PyMemcacheCache) and cached_db engines, with Django's expiry rules
//     (SESSION_COOKIE_AGE, _session_expiry, expire_date).
//   - Users (NewUsers): the login check — _auth_user_id, an allowed
//     _auth_user_backend, the user's is_active, and _auth_user_hash
//     against the current password hash under SECRET_KEY or any of
//     SECRET_KEY_FALLBACKS.
//   - Middleware: net/http middleware giving handlers the session (read,
//     modify, Flush, CycleKey; saved when changed) and the user.
//   - Subpackages: signing (django.core.signing), pyjson (Python-compatible
//     JSON), pickle (a whitelist reader and writer for pickled sessions)
//     and forwardauth (the HTTP service behind `celeriac sessions`).
//
// Usage, in a Go service beside a Django site using cached_db on
// django-redis:
//
//	db, _ := pgxpool.New(ctx, "postgres://app@db/site")
//	cache, _ := sessions.NewRedisCache(sessions.RedisConfig{
//		Client: redis.NewClient(&redis.Options{Addr: "redis:6379"}),
//	})
//	keys := signing.Keys{Current: []byte(os.Getenv("DJANGO_SECRET_KEY"))}
//	store, _ := sessions.NewStore(sessions.Config{
//		Engine: sessions.EngineCachedDB, Keys: keys, DB: db, Cache: cache,
//	})
//	users, _ := sessions.NewUsers(sessions.UsersConfig{DB: db, Keys: keys})
//	mw, _ := sessions.NewMiddleware(sessions.MiddlewareConfig{Store: store, Users: users})
//	http.Handle("/", mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		u, ok := sessions.UserFromContext(r.Context())
//		s := sessions.FromContext(r.Context())
//		s.Set("last_seen_by", "go")
//		...
//	})))
//
// # Compatibility notes
//
// Sessions are read whatever the serializer (JSON or pickle); they are
// written with Config.Serializer (db, signed_cookies) or the cache's
// serializer. Values keep Python's types (see package pyjson); tuples come
// back as lists, as Django's JSON serializer also returns them. The pickle
// reader executes nothing and refuses everything but plain data and
// datetimes. Cache-backed sessions are not signed: anyone who can write the
// cache can forge a session, in Django as here. Prefer giving sessions
// their own cache alias with django-redis's JSON serializer.
//
// Django 3.1/3.2 also accept SHA-1 signatures, SHA-1 auth hashes and the
// pre-3.1 session encoding; set AcceptSHA1 to do the same during such an
// upgrade. SECRET_KEY_FALLBACKS (Django 4.1+) go in signing.Keys.Fallbacks.
package sessions
