package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/celeriac/celeriac/sessions"
	"github.com/celeriac/celeriac/sessions/forwardauth"
	"github.com/celeriac/celeriac/sessions/signing"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

func init() {
	register("sessions", "forward-auth service for Django sessions (nginx auth_request, Caddy forward_auth)", runSessions)
}

// listFlag collects a flag that may repeat and may hold comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// sessionsOpts is the parsed command line.
type sessionsOpts struct {
	listen, engine, secret, redisURL, memcached, database string
	cookieName, serializer, keySalt, userTable, logLevel  string
	cachePrefix, cacheSerializer                          string
	cacheVersion, cookieAge                               int
	cacheZlib, acceptSHA1                                 bool
	userCacheTTL                                          time.Duration
	fallbacks, backends                                   listFlag
}

func parseSessions(e *env, args []string) (*sessionsOpts, error) {
	o := &sessionsOpts{}
	fs := newFlagSet(e, "sessions", "--secret-key KEY --database URL [--engine ENGINE] [flags]")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8081", "address to serve /auth and /healthz on")
	fs.StringVar(&o.engine, "engine", e.envOr("DJANGO_SESSION_ENGINE", "db"), "SESSION_ENGINE: signed_cookies, db, cache, cached_db or Django's dotted path (env DJANGO_SESSION_ENGINE)")
	// Secrets come from the environment after parsing, never as flag
	// defaults: -h prints defaults.
	fs.StringVar(&o.secret, "secret-key", "", "Django's SECRET_KEY (env DJANGO_SECRET_KEY; prefer the environment to keep it out of ps)")
	fs.Var(&o.fallbacks, "secret-key-fallbacks", "SECRET_KEY_FALLBACKS, comma-separated or repeated (env DJANGO_SECRET_KEY_FALLBACKS)")
	fs.StringVar(&o.database, "database", "", "PostgreSQL URL of the Django database: users, and sessions for db/cached_db (env DATABASE_URL)")
	fs.StringVar(&o.redisURL, "redis", "", "django-redis cache URL (redis://host:6379/1) for the cache and cached_db engines")
	fs.StringVar(&o.memcached, "memcached", "", "PyMemcacheCache server host:port for the cache and cached_db engines")
	fs.StringVar(&o.cachePrefix, "cache-key-prefix", "", "the session cache's KEY_PREFIX")
	fs.IntVar(&o.cacheVersion, "cache-version", 1, "the session cache's VERSION")
	fs.StringVar(&o.cacheSerializer, "cache-serializer", "pickle", "django-redis serializer used when writing: pickle or json (reads accept both)")
	fs.BoolVar(&o.cacheZlib, "cache-zlib", false, "django-redis uses the zlib compressor")
	fs.StringVar(&o.cookieName, "cookie-name", "sessionid", "SESSION_COOKIE_NAME")
	fs.IntVar(&o.cookieAge, "cookie-age", 1209600, "SESSION_COOKIE_AGE in seconds (signed_cookies expiry)")
	fs.StringVar(&o.serializer, "serializer", "json", "SESSION_SERIALIZER: json or pickle")
	fs.StringVar(&o.keySalt, "key-salt", sessions.SaltSessionStore, "salt of db/cached_db session data (django.contrib.sessions.<store class name>)")
	fs.StringVar(&o.userTable, "user-table", "auth_user", "the user model's table (columns id, password, is_active)")
	fs.Var(&o.backends, "backends", "AUTHENTICATION_BACKENDS, comma-separated (default django.contrib.auth.backends.ModelBackend)")
	fs.BoolVar(&o.acceptSHA1, "accept-sha1", false, "also accept SHA-1 signatures and auth hashes, as Django 3.1/3.2 do")
	fs.DurationVar(&o.userCacheTTL, "user-cache-ttl", 0, "cache each user's password hash and is_active this long (0: query every time); a password change takes up to this long to log sessions out")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error (debug logs why each request was refused)")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "celeriac sessions: unexpected argument %q\n", fs.Arg(0))
		return nil, errUsage
	}
	if o.secret == "" {
		o.secret = e.getenv("DJANGO_SECRET_KEY")
	}
	if o.database == "" {
		o.database = e.getenv("DATABASE_URL")
	}
	if len(o.fallbacks) == 0 {
		_ = o.fallbacks.Set(e.getenv("DJANGO_SECRET_KEY_FALLBACKS"))
	}
	return o, o.validate()
}

func (o *sessionsOpts) validate() error {
	engine, err := sessions.ParseEngine(o.engine)
	if err != nil {
		return fmt.Errorf("--engine: %w", err)
	}
	switch {
	case o.secret == "":
		return errors.New("--secret-key (or DJANGO_SECRET_KEY) is required: it verifies sessions and login hashes")
	case o.database == "":
		return errors.New("--database (or DATABASE_URL) is required: the login check reads the user table")
	case o.cookieAge <= 0:
		return fmt.Errorf("--cookie-age %d must be positive", o.cookieAge)
	case o.userCacheTTL < 0:
		return fmt.Errorf("--user-cache-ttl %s must not be negative", o.userCacheTTL)
	case o.redisURL != "" && o.memcached != "":
		return errors.New("--redis and --memcached: give only the session cache's")
	case o.serializer != "json" && o.serializer != "pickle":
		return fmt.Errorf("--serializer %q: want json or pickle", o.serializer)
	case o.cacheSerializer != "json" && o.cacheSerializer != "pickle":
		return fmt.Errorf("--cache-serializer %q: want json or pickle", o.cacheSerializer)
	}
	needCache := engine == sessions.EngineCache || engine == sessions.EngineCachedDB
	if needCache && o.redisURL == "" && o.memcached == "" {
		return fmt.Errorf("--engine %s needs --redis or --memcached", engine)
	}
	if _, err := slogLevel(o.logLevel); err != nil {
		return err
	}
	return nil
}

func slogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func runSessions(ctx context.Context, e *env, args []string) error {
	o, err := parseSessions(e, args)
	if err != nil {
		return err
	}
	level, _ := slogLevel(o.logLevel)
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	engine, _ := sessions.ParseEngine(o.engine)

	keys := signing.Keys{Current: []byte(o.secret)}
	for _, f := range o.fallbacks {
		keys.Fallbacks = append(keys.Fallbacks, []byte(f))
	}
	db, err := pgxpool.New(ctx, o.database)
	if err != nil {
		return fmt.Errorf("--database: %w", err)
	}
	defer db.Close()
	if err := db.Ping(ctx); err != nil {
		return fmt.Errorf("--database: %w", err)
	}
	cfg := sessions.Config{
		Engine: engine, Keys: keys, AcceptSHA1: o.acceptSHA1, Serializer: sessions.Serializer(o.serializer),
		CookieAge: time.Duration(o.cookieAge) * time.Second, KeySalt: o.keySalt, DB: db, Logger: log,
	}
	switch {
	case o.redisURL != "":
		opt, err := redis.ParseURL(o.redisURL)
		if err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		rc := redis.NewClient(opt)
		defer rc.Close()
		if err := rc.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		if cfg.Cache, err = sessions.NewRedisCache(sessions.RedisConfig{Client: rc, KeyPrefix: o.cachePrefix,
			Version: o.cacheVersion, Serializer: sessions.CacheSerializer(o.cacheSerializer), Zlib: o.cacheZlib}); err != nil {
			return err
		}
	case o.memcached != "":
		mc := memcache.New(o.memcached)
		if err := mc.Ping(); err != nil {
			return fmt.Errorf("--memcached: %w", err)
		}
		if cfg.Cache, err = sessions.NewMemcachedCache(sessions.MemcachedConfig{Client: mc, KeyPrefix: o.cachePrefix,
			Version: o.cacheVersion}); err != nil {
			return err
		}
	}
	store, err := sessions.NewStore(cfg)
	if err != nil {
		return err
	}
	users, err := sessions.NewUsers(sessions.UsersConfig{DB: db, Keys: keys, AcceptSHA1: o.acceptSHA1, Table: o.userTable,
		Backends: o.backends, CacheTTL: o.userCacheTTL, Logger: log})
	if err != nil {
		return err
	}
	srv, err := forwardauth.New(forwardauth.Config{Addr: o.listen, Store: store, Users: users, CookieName: o.cookieName, Logger: log})
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
