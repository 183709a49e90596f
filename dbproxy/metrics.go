package dbproxy

import "github.com/prometheus/client_golang/prometheus"

// metrics are the proxy's Prometheus series, all prefixed dbproxy_.
type metrics struct {
	clients      prometheus.Gauge
	serverConns  prometheus.Gauge
	routed       *prometheus.CounterVec
	rywPrimary   prometheus.Counter
	reprepares   prometheus.Counter
	cancels      prometheus.Counter
	authFailures prometheus.Counter
	serverErrors prometheus.Counter
	waitSeconds  prometheus.Histogram
	replicaLag   *prometheus.GaugeVec

	cacheHits, cacheMisses, cacheInvalidations prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, p *Proxy) (*metrics, error) {
	m := &metrics{
		clients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dbproxy_client_connections",
			Help: "Client connections logged in."}),
		serverConns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dbproxy_server_connections",
			Help: "Open server connections, lent or idle."}),
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dbproxy_routed_total",
			Help: "Server connections lent, by server role (primary, replica)."}, []string{"role"}),
		rywPrimary: prometheus.NewCounter(prometheus.CounterOpts{Name: "dbproxy_read_your_writes_primary_total",
			Help: "Reads sent to the primary because no replica had replayed the client's last write."}),
		reprepares: prometheus.NewCounter(prometheus.CounterOpts{Name: "dbproxy_reprepares_total",
			Help: "Named statements prepared again on another server connection."}),
		cancels: prometheus.NewCounter(prometheus.CounterOpts{Name: "dbproxy_cancel_requests_total",
			Help: "Cancel requests forwarded to servers."}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "dbproxy_auth_failures_total",
			Help: "Client logins refused."}),
		serverErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "dbproxy_server_connect_errors_total",
			Help: "Failed connections to servers."}),
		waitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dbproxy_pool_wait_seconds",
			Help: "Time clients waited for a server connection when none was free.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}),
		replicaLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dbproxy_replica_lag_bytes",
			Help: "WAL bytes a replica's replay position is behind the primary."}, []string{"replica"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Name: "dbproxy_cache_hits_total",
			Help: "Queries answered from the query cache."}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "dbproxy_cache_misses_total",
			Help: "Cacheable queries that went to PostgreSQL."}),
		cacheInvalidations: prometheus.NewCounter(prometheus.CounterOpts{Name: "dbproxy_cache_invalidations_total",
			Help: "Table generations bumped by writes."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.clients, m.serverConns, m.routed, m.rywPrimary, m.reprepares,
		m.cancels, m.authFailures, m.serverErrors, m.waitSeconds, m.replicaLag, m.cacheHits, m.cacheMisses, m.cacheInvalidations} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
