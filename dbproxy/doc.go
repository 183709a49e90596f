// Package dbproxy is a PostgreSQL proxy that pools server connections and
// splits reads from writes, speaking the v3 wire protocol on both sides.
//
// Clients connect to the proxy as if it were PostgreSQL. The proxy
// authenticates them itself (SCRAM-SHA-256 or md5 against a PgBouncer-style
// userlist or an auth query; trust only when configured), then lends them
// server connections from a pool per (database, user, server):
//
//   - session mode: one server connection for the client's whole session,
//     reset with DISCARD ALL when it is given back;
//   - transaction mode: a server connection only while a transaction (or a
//     single statement outside one) runs. Named prepared statements keep
//     working: the proxy remembers each client's Parse messages and
//     prepares them again, under the client's name, on whichever server
//     connection the client lands on. client_encoding, DateStyle, TimeZone,
//     IntervalStyle and application_name follow the client across server
//     connections.
//
// With replicas configured (transaction mode), each transaction's first
// statement is classified by package sqlclass and by the volatility of the
// functions it calls (pg_proc, cached): reads go to a replica, everything
// else — and everything inside a transaction block — to the primary.
// Read-your-writes is exact: when a client's write finishes, the proxy
// reads the primary's WAL position on that same connection, and sends that
// client's later reads only to replicas whose replay position has reached
// it (otherwise to the primary). Replicas are polled for health and lag; a
// dead or lagging replica gets no reads until it recovers.
//
// Server connections log in with the configured password, or, for users
// known only by a stored SCRAM verifier or md5 hash (auth_file or
// auth_query), with the ClientKey a client's SCRAM proof revealed or the
// md5 hash itself, as PgBouncer does.
//
// An optional query cache (Config.CacheRedis, CacheTables) keeps results of
// read-only statements on listed tables in Redis; writes through the proxy
// invalidate them at once through per-table generation counters.
//
// The virtual database "dbproxy" answers SHOW POOLS, SHOW CLIENTS, SHOW
// SERVERS, SHOW STATS, SHOW REPLICAS and SHOW CACHE for admin users;
// Prometheus metrics are registered on Config.Registerer.
//
// Usage:
//
//	p, err := dbproxy.New(dbproxy.Config{
//		Listen:   "127.0.0.1:6432",
//		Primary:  "postgres://app:secret@db1:5432/app",
//		Replicas: []string{"postgres://app:secret@db2:5432/app"},
//		AuthFile: "/etc/dbproxy/userlist.txt",
//	})
//	if err != nil { ... }
//	if err := p.Start(ctx); err != nil { ... }
//	defer p.Shutdown(ctx)
package dbproxy
