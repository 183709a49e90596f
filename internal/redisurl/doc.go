// Package redisurl turns the Redis URLs Celery and kombu accept into
// go-redis options for a universal client, so that one configuration string
// reaches a single server, a Sentinel-managed master or a Redis Cluster.
//
//	c, err := redisurl.NewClient("sentinel://:secret@10.0.0.1:26379;sentinel://10.0.0.2:26379/0?master_name=mymaster", redisurl.Options{})
//	if err != nil {
//		return err // names the bad part of the URL; the password is never shown
//	}
//	defer c.Close()
//
// Accepted forms:
//
//	redis://[[user]:password@]host[:port][/db]      one server (port 6379, db 0)
//	rediss://…?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem&ssl_certfile=…&ssl_keyfile=…
//	unix:///path/redis.sock[?db=N]                   also socket:// and redis+socket://
//	                                                 (kombu spells the db ?virtual_host=N)
//	sentinel://[:password@]host[:26379][/db][;sentinel://host2:26379…]?master_name=NAME
//	redis+cluster://[[user]:password@]host:port,host:port[,…]   also rediss+cluster://
//
// Sentinel URLs list one sentinel per ';'-separated part, as Celery writes
// them; the password and db of the first part are the master's, and the
// master name comes from ?master_name= or [Options.MasterName] (Celery keeps
// it in result_backend_transport_options). ?sentinel_password= authenticates
// to the sentinels themselves.
//
// The cluster form is celeriac's own (Celery 5.2 has no cluster result
// backend): seed nodes separated by ',' in one authority, or by ';' as full
// URLs (needed for IPv6 seeds). Redis Cluster has only database 0.
//
// Query parameters understood everywhere: db, password, username,
// socket_timeout and socket_connect_timeout (seconds, float), max_connections,
// client_name, protocol (2 or 3). redis-py parameters that have no go-redis
// meaning (health_check_interval, retry_on_timeout, socket_keepalive) are
// accepted and ignored; any other parameter is an error, so a typo never
// passes silently.
//
// TLS (rediss://) verifies the server certificate and host name by default.
// ssl_cert_reqs=none (or CERT_NONE) disables verification; CERT_OPTIONAL
// behaves like CERT_REQUIRED because a Redis server always presents a
// certificate; ssl_check_hostname=false keeps chain verification but skips
// the host name check (redis-py's default). Celery refuses ssl_* parameters
// on a plain redis:// URL, and so does this package.
package redisurl
