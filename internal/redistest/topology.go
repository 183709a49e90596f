package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/internal/testenv"
)

// SentinelSetup is a master, one replica and one sentinel watching them.
type SentinelSetup struct {
	MasterName string
	Master     *Server
	Replica    *Server
	Sentinel   *Server
}

// URL is the Celery-style sentinel URL with the master name in the query.
func (s *SentinelSetup) URL() string {
	return fmt.Sprintf("sentinel://%s/0?master_name=%s", s.Sentinel.Addr, s.MasterName)
}

// StartSentinel starts a master, a replica of it and a sentinel (quorum 1)
// on the three ports, and waits until the sentinel knows both servers.
func StartSentinel(t testing.TB, masterPort, replicaPort, sentinelPort int) *SentinelSetup {
	t.Helper()
	m := Start(t, masterPort)
	r := Start(t, replicaPort, "--replicaof", "127.0.0.1", strconv.Itoa(masterPort))
	name := "celeriac-test"
	sn := launch(t, sentinelPort, true,
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1", name, masterPort),
		fmt.Sprintf("sentinel down-after-milliseconds %s 1000", name),
		fmt.Sprintf("sentinel failover-timeout %s 3000", name),
	)
	sn.waitPing(t)
	c := goredis.NewClient(&goredis.Options{Addr: sn.Addr})
	defer c.Close()
	err := Eventually(15*time.Second, func() error {
		ctx := context.Background()
		addr, err := c.Do(ctx, "SENTINEL", "get-master-addr-by-name", name).StringSlice()
		if err != nil {
			return err
		}
		if len(addr) != 2 || addr[1] != strconv.Itoa(masterPort) {
			return fmt.Errorf("master is %v", addr)
		}
		reps, err := c.Do(ctx, "SENTINEL", "replicas", name).Slice()
		if err != nil {
			return err
		}
		if len(reps) == 0 {
			return fmt.Errorf("sentinel does not know the replica yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: sentinel not ready: %v\n%s", err, sn.Log())
	}
	return &SentinelSetup{MasterName: name, Master: m, Replica: r, Sentinel: sn}
}

// MasterAddr asks the sentinel which server is the master now.
func (s *SentinelSetup) MasterAddr(ctx context.Context) (string, error) {
	c := goredis.NewClient(&goredis.Options{Addr: s.Sentinel.Addr})
	defer c.Close()
	addr, err := c.Do(ctx, "SENTINEL", "get-master-addr-by-name", s.MasterName).StringSlice()
	if err != nil {
		return "", err
	}
	if len(addr) != 2 {
		return "", fmt.Errorf("redistest: sentinel answered %v", addr)
	}
	return addr[0] + ":" + addr[1], nil
}

// ClusterSetup is a Redis Cluster of masters without replicas.
type ClusterSetup struct {
	Nodes []*Server
}

// URL is the redis+cluster:// URL listing every node as a seed.
func (c *ClusterSetup) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}

// StartCluster starts one cluster-enabled server per port (cluster bus on
// busPorts[i], which must be given because the default port+10000 may be
// outside the test's range), joins them with `redis-cli --cluster create`
// and waits until every node reports cluster_state:ok.
func StartCluster(t testing.TB, ports, busPorts []int) *ClusterSetup {
	t.Helper()
	if len(ports) != len(busPorts) || len(ports) < 3 {
		t.Fatalf("redistest: StartCluster needs at least 3 ports, each with a bus port")
	}
	cli := testenv.Program(t, "redis-cli")
	cs := &ClusterSetup{}
	var addrs []string
	for i, p := range ports {
		n := Start(t, p, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--cluster-port", strconv.Itoa(busPorts[i]))
		cs.Nodes = append(cs.Nodes, n)
		addrs = append(addrs, n.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range cs.Nodes {
		c := goredis.NewClient(&goredis.Options{Addr: n.Addr})
		err := Eventually(20*time.Second, func() error {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(ports))) {
				return fmt.Errorf("not ready: %s", strings.ReplaceAll(info, "\r\n", " "))
			}
			return nil
		})
		c.Close()
		if err != nil {
			t.Fatalf("redistest: cluster node %s: %v", n.Addr, err)
		}
	}
	return cs
}
