package dbproxy

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// adminMessage answers one message on the admin console; false ends the
// session.
func (c *client) adminMessage(msg pgproto3.FrontendMessage) bool {
	switch m := msg.(type) {
	case *pgproto3.Terminate:
		return false
	case *pgproto3.Query:
		cols, rows, err := c.p.show(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(m.String), ";")))
		if err != nil {
			c.be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42601", Message: err.Error()})
		} else {
			fields := make([]pgproto3.FieldDescription, len(cols))
			for i, col := range cols {
				fields[i] = pgproto3.FieldDescription{Name: []byte(col), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}
			}
			c.be.Send(&pgproto3.RowDescription{Fields: fields})
			for _, r := range rows {
				vals := make([][]byte, len(r))
				for i, v := range r {
					vals[i] = []byte(v)
				}
				c.be.Send(&pgproto3.DataRow{Values: vals})
			}
			c.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SHOW")})
		}
		c.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		return c.be.Flush() == nil
	default:
		c.be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "08P01", Message: "the admin console speaks the simple query protocol only"})
		if _, ok := msg.(*pgproto3.Sync); ok {
			c.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		}
		return c.be.Flush() == nil
	}
}

func (p *Proxy) serverName(i int) string {
	if i == 0 {
		return "primary"
	}
	return fmt.Sprintf("replica%d", i)
}

// show builds the admin views.
func (p *Proxy) show(cmd string) ([]string, [][]string, error) {
	switch strings.ToUpper(strings.Join(strings.Fields(cmd), " ")) {
	case "SHOW POOLS":
		cols := []string{"database", "user", "server", "cl_active", "cl_waiting", "sv_active", "sv_idle", "pool_mode"}
		active := map[poolKey]int{}
		p.clientsMu.Lock()
		for _, c := range p.clients {
			c.mu.Lock()
			if c.sc != nil {
				active[c.sc.pool.key]++
			}
			c.mu.Unlock()
		}
		p.clientsMu.Unlock()
		var rows [][]string
		for _, pl := range p.poolList() {
			a, idle, waiting := pl.counts()
			rows = append(rows, []string{pl.key.db, pl.key.user, p.serverName(pl.key.server),
				fmt.Sprint(active[pl.key]), fmt.Sprint(waiting), fmt.Sprint(a), fmt.Sprint(idle), string(p.cfg.PoolMode)})
		}
		return cols, rows, nil
	case "SHOW CLIENTS":
		cols := []string{"user", "database", "state", "addr", "pid", "server", "server_pid", "queries", "lsn"}
		var rows [][]string
		p.clientsMu.Lock()
		for _, c := range p.clients {
			c.mu.Lock()
			state, server, spid := "idle", "", ""
			if c.sc != nil {
				state, server, spid = "active", p.serverName(c.sc.pool.key.server), fmt.Sprint(c.sc.pid)
			}
			rows = append(rows, []string{c.user, c.db, state, c.conn.RemoteAddr().String(), fmt.Sprint(c.pid), server, spid,
				fmt.Sprint(c.queries), fmt.Sprintf("%X/%X", c.lsn>>32, uint32(c.lsn))})
			c.mu.Unlock()
		}
		p.clientsMu.Unlock()
		sort.Slice(rows, func(i, j int) bool { return rows[i][4] < rows[j][4] })
		return cols, rows, nil
	case "SHOW SERVERS":
		cols := []string{"database", "user", "server", "state", "pid", "addr", "age_seconds"}
		var rows [][]string
		now := time.Now()
		for _, pl := range p.poolList() {
			pl.mu.Lock()
			for _, sc := range pl.idle {
				rows = append(rows, []string{pl.key.db, pl.key.user, p.serverName(pl.key.server), "idle", fmt.Sprint(sc.pid), sc.addr,
					fmt.Sprintf("%.0f", now.Sub(sc.created).Seconds())})
			}
			pl.mu.Unlock()
		}
		p.clientsMu.Lock()
		for _, c := range p.clients {
			c.mu.Lock()
			if sc := c.sc; sc != nil {
				rows = append(rows, []string{sc.pool.key.db, sc.pool.key.user, p.serverName(sc.pool.key.server), "active", fmt.Sprint(sc.pid), sc.addr,
					fmt.Sprintf("%.0f", now.Sub(sc.created).Seconds())})
			}
			c.mu.Unlock()
		}
		p.clientsMu.Unlock()
		return cols, rows, nil
	case "SHOW STATS":
		cols := []string{"database", "user", "server", "total_lendings", "total_query_count", "total_wait_time_us"}
		var rows [][]string
		for _, pl := range p.poolList() {
			rows = append(rows, []string{pl.key.db, pl.key.user, p.serverName(pl.key.server),
				fmt.Sprint(pl.lendings.Load()), fmt.Sprint(pl.queries.Load()), fmt.Sprint(pl.waitMicros.Load())})
		}
		return cols, rows, nil
	case "SHOW REPLICAS":
		cols := []string{"server", "up", "replay_lsn", "lag_bytes", "error"}
		p.router.mu.Lock()
		rows := [][]string{{"primary", "true", fmt.Sprintf("%X/%X", p.router.primary>>32, uint32(p.router.primary)), "0", ""}}
		for i, st := range p.router.replicas {
			rows = append(rows, []string{p.serverName(i + 1), fmt.Sprint(st.up), fmt.Sprintf("%X/%X", st.replay>>32, uint32(st.replay)), fmt.Sprint(st.lagB), st.err})
		}
		p.router.mu.Unlock()
		return cols, rows, nil
	case "SHOW CACHE":
		if p.cache == nil {
			return []string{"stat", "value"}, [][]string{{"enabled", "false"}}, nil
		}
		return []string{"stat", "value"}, append([][]string{{"enabled", "true"}}, p.cache.stats()...), nil
	}
	return nil, nil, fmt.Errorf("unknown admin command %q (try SHOW POOLS, SHOW CLIENTS, SHOW SERVERS, SHOW STATS, SHOW REPLICAS, SHOW CACHE)", cmd)
}

func (p *Proxy) poolList() []*pool {
	p.poolsMu.Lock()
	defer p.poolsMu.Unlock()
	out := make([]*pool, 0, len(p.pools))
	for _, pl := range p.pools {
		out = append(out, pl)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].key, out[j].key
		if a.db != b.db {
			return a.db < b.db
		}
		if a.user != b.user {
			return a.user < b.user
		}
		return a.server < b.server
	})
	return out
}
