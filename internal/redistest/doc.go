// Package redistest starts private redis-server processes for tests that
// need more than the shared Redis: independent masters for Redlock, a
// Sentinel-managed master with a replica, a small Redis Cluster. Each server
// runs from a temporary directory on a loopback port the test names, and is
// killed when the test ends.
//
//	s := redistest.Start(t, 6390)
//	c := goredis.NewClient(&goredis.Options{Addr: s.Addr})
//	s.Kill() // the test can take a server away mid-run
//
// Tests using it skip (or fail under REQUIRE_INTEGRATION=1) when
// redis-server is not installed.
package redistest
