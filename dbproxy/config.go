package dbproxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
)

// Sentinel errors.
var (
	// ErrConfig wraps every configuration error returned by New.
	ErrConfig = errors.New("dbproxy: invalid config")
	// ErrClosed is returned by Start after Shutdown.
	ErrClosed = errors.New("dbproxy: closed")
	// ErrAuth is a failed client authentication.
	ErrAuth = errors.New("dbproxy: authentication failed")
)

// PoolMode says when a client gives its server connection back.
type PoolMode string

const (
	// PoolTransaction lends a server connection for one transaction.
	PoolTransaction PoolMode = "transaction"
	// PoolSession lends a server connection for the client's whole session.
	PoolSession PoolMode = "session"
)

// Client authentication methods.
const (
	AuthSCRAM = "scram-sha-256"
	AuthMD5   = "md5"
	AuthTrust = "trust"
)

// Config configures a Proxy. Zero fields take the defaults noted.
type Config struct {
	// Listen is the address clients connect to (default 127.0.0.1:6432).
	Listen string `yaml:"listen"`
	// Primary is the primary's URL, postgres://user:password@host:port/db.
	// Its user and password are used for health checks and pg_proc lookups,
	// and for server connections of that user.
	Primary string `yaml:"primary"`
	// Replicas are streaming standbys' URLs; reads go there.
	Replicas []string `yaml:"replicas"`
	// PoolMode is transaction (default) or session.
	PoolMode PoolMode `yaml:"pool_mode"`
	// PoolSize caps server connections per (database, user, server)
	// (default 20).
	PoolSize int `yaml:"pool_size"`
	// MinIdle keeps this many idle server connections open per pool once
	// the pool has been used (default 0).
	MinIdle int `yaml:"min_idle"`
	// MaxClientConns caps client connections (default 1000).
	MaxClientConns int `yaml:"max_client_conns"`
	// ServerLifetime closes server connections older than this when they
	// are given back (default 1h).
	ServerLifetime time.Duration `yaml:"server_lifetime"`
	// ServerIdleTimeout closes server connections idle this long
	// (default 10m).
	ServerIdleTimeout time.Duration `yaml:"server_idle_timeout"`
	// QueryWaitTimeout bounds how long a client waits for a server
	// connection (default 2m).
	QueryWaitTimeout time.Duration `yaml:"query_wait_timeout"`
	// AuthType is scram-sha-256 (default), md5 or trust. With scram-sha-256
	// a user whose secret is an md5 hash is asked for md5; with md5 a user
	// whose secret is a SCRAM verifier is asked for SCRAM.
	AuthType string `yaml:"auth_type"`
	// AuthFile is a PgBouncer userlist: lines `"user" "secret"`, the secret
	// plain, md5… or SCRAM-SHA-256$….
	AuthFile string `yaml:"auth_file"`
	// AuthQuery fetches a secret for users not in AuthFile, run on the
	// primary with the Primary URL's credentials; $1 is the user name and
	// the result is (user, secret). Example:
	// SELECT usename, passwd FROM pg_shadow WHERE usename = $1
	AuthQuery string `yaml:"auth_query"`
	// TLSCert and TLSKey enable TLS for clients that ask for it; without
	// them SSLRequest is refused with 'N'.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// AdminUsers may connect to the virtual database AdminDatabase.
	AdminUsers []string `yaml:"admin_users"`
	// AdminDatabase is the admin console's name (default dbproxy).
	AdminDatabase string `yaml:"admin_database"`
	// ReplicaMaxLag takes a replica out of reads while its replay position
	// is more than this many WAL bytes behind the primary (default 16 MiB).
	ReplicaMaxLag int64 `yaml:"replica_max_lag"`
	// HealthInterval is how often replicas and the primary's WAL position
	// are polled (default 100ms).
	HealthInterval time.Duration `yaml:"health_interval"`
	// NoReadYourWrites turns off LSN tracking after writes.
	NoReadYourWrites bool `yaml:"no_read_your_writes"`
	// ReplicaSafeFunctions are VOLATILE functions known to have no side
	// effects, so calling them does not send a statement to the primary;
	// added to DefaultReplicaSafeFunctions.
	ReplicaSafeFunctions []string `yaml:"replica_safe_functions"`
	// PrimaryFunctions always send a statement to the primary, whatever
	// pg_proc says (for functions that write through dblink and the like).
	PrimaryFunctions []string `yaml:"primary_functions"`
	// VolatilityTTL is how long pg_proc volatility answers are cached
	// (default 5m).
	VolatilityTTL time.Duration `yaml:"volatility_ttl"`

	// CacheRedis is a redis:// URL; with CacheTables it turns the query
	// cache on: results of single read-only simple-protocol statements
	// whose tables are all in CacheTables are kept in Redis for CacheTTL,
	// and any write through the proxy naming one of the tables invalidates
	// its entries at once. Off by default.
	CacheRedis  string   `yaml:"cache_redis"`
	CacheTables []string `yaml:"cache_tables"`
	// CacheTTL bounds how long an entry lives, and so how stale a result can
	// be after a write that bypassed the proxy (default 30s).
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CachePrefix starts every Redis key (default "dbproxy:").
	CachePrefix string `yaml:"cache_prefix"`

	// Logger receives the proxy's logs; nil discards them.
	Logger *slog.Logger `yaml:"-"`
	// Registerer receives the proxy's Prometheus metrics; nil registers
	// none.
	Registerer prometheus.Registerer `yaml:"-"`
}

// DefaultReplicaSafeFunctions are built-in VOLATILE functions that only
// read server state.
var DefaultReplicaSafeFunctions = []string{
	"pg_is_in_recovery", "pg_last_wal_replay_lsn", "pg_last_wal_receive_lsn",
	"pg_last_xact_replay_timestamp", "pg_backend_pid", "clock_timestamp", "timeofday",
}

// validate applies defaults and checks c, naming the field at fault.
func (c *Config) validate() (*settings, error) {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:6432"
	}
	if c.PoolMode == "" {
		c.PoolMode = PoolTransaction
	}
	if c.PoolMode != PoolTransaction && c.PoolMode != PoolSession {
		return nil, bad("PoolMode", "%q is neither transaction nor session", c.PoolMode)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.PoolSize, 20)
	def(&c.MaxClientConns, 1000)
	defd(&c.ServerLifetime, time.Hour)
	defd(&c.ServerIdleTimeout, 10*time.Minute)
	defd(&c.QueryWaitTimeout, 2*time.Minute)
	defd(&c.HealthInterval, 100*time.Millisecond)
	defd(&c.VolatilityTTL, 5*time.Minute)
	if c.ReplicaMaxLag == 0 {
		c.ReplicaMaxLag = 16 << 20
	}
	if c.AdminDatabase == "" {
		c.AdminDatabase = "dbproxy"
	}
	if c.AuthType == "" {
		c.AuthType = AuthSCRAM
	}
	switch {
	case c.PoolSize < 0:
		return nil, bad("PoolSize", "negative")
	case c.MinIdle < 0 || c.MinIdle > c.PoolSize:
		return nil, bad("MinIdle", "%d is outside 0..PoolSize", c.MinIdle)
	case c.MaxClientConns < 0:
		return nil, bad("MaxClientConns", "negative")
	case c.ServerLifetime < 0 || c.ServerIdleTimeout < 0 || c.QueryWaitTimeout < 0:
		return nil, bad("ServerLifetime/ServerIdleTimeout/QueryWaitTimeout", "negative duration")
	case c.HealthInterval < 0:
		return nil, bad("HealthInterval", "negative")
	case c.ReplicaMaxLag < 0:
		return nil, bad("ReplicaMaxLag", "negative")
	}
	s := &settings{}
	if c.Primary == "" {
		return nil, bad("Primary", "required")
	}
	pc, err := pgconn.ParseConfig(c.Primary)
	if err != nil {
		return nil, bad("Primary", "%v", err)
	}
	s.primary = pc
	for i, r := range c.Replicas {
		rc, err := pgconn.ParseConfig(r)
		if err != nil {
			return nil, bad(fmt.Sprintf("Replicas[%d]", i), "%v", err)
		}
		s.replicas = append(s.replicas, rc)
	}
	if len(c.Replicas) > 0 && c.PoolMode == PoolSession {
		return nil, bad("Replicas", "read/write splitting needs PoolMode transaction")
	}
	switch c.AuthType {
	case AuthSCRAM, AuthMD5:
		if c.AuthFile == "" && c.AuthQuery == "" {
			return nil, bad("AuthFile", "auth_type %s needs AuthFile or AuthQuery", c.AuthType)
		}
	case AuthTrust:
	default:
		return nil, bad("AuthType", "%q is not scram-sha-256, md5 or trust", c.AuthType)
	}
	if c.AuthFile != "" {
		users, err := readUserlist(c.AuthFile)
		if err != nil {
			return nil, bad("AuthFile", "%v", err)
		}
		s.users = users
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, bad("TLSCert", "TLSCert and TLSKey go together")
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, bad("TLSCert", "%v", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if (c.CacheRedis == "") != (len(c.CacheTables) == 0) {
		return nil, bad("CacheTables", "the query cache needs both CacheRedis and CacheTables")
	}
	if c.CacheTTL < 0 {
		return nil, bad("CacheTTL", "negative")
	}
	defd(&c.CacheTTL, 30*time.Second)
	if c.CachePrefix == "" {
		c.CachePrefix = "dbproxy:"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// settings is what validate derived from Config.
type settings struct {
	primary  *pgconn.Config
	replicas []*pgconn.Config
	users    map[string]string
	tls      *tls.Config
}
