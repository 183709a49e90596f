package dbproxy

import (
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// stmtKey identifies a statement's definition: text and parameter types.
func stmtKey(m *pgproto3.Parse) string {
	if len(m.ParameterOIDs) == 0 {
		return m.Query
	}
	var b strings.Builder
	b.WriteString(m.Query)
	for _, o := range m.ParameterOIDs {
		b.WriteByte(0)
		b.WriteString(string(rune(o)))
	}
	return b.String()
}

// forward sends one client message to the attached server, preparing named
// statements the server connection has not seen.
func (c *client) forward(msg pgproto3.FrontendMessage) error {
	sc := c.sc
	switch m := msg.(type) {
	case *pgproto3.Query:
		c.queue = append(c.queue, slot{kind: 'Q'})
		c.noteSessionSQL(m.String)
		c.queries++
		sc.pool.queries.Add(1)
	case *pgproto3.Parse:
		if m.Name != "" {
			cp := &pgproto3.Parse{Name: m.Name, Query: m.Query, ParameterOIDs: slices.Clone(m.ParameterOIDs)}
			c.stmts[m.Name] = cp
			if _, ok := sc.prepared[m.Name]; ok {
				c.inject(&pgproto3.Close{ObjectType: 'S', Name: m.Name}, 'C', "")
			}
			sc.prepared[m.Name] = stmtKey(cp)
		}
		c.queue = append(c.queue, slot{kind: 'P', name: m.Name})
		c.unsynced = true
	case *pgproto3.Bind:
		c.ensure(m.PreparedStatement)
		c.queue = append(c.queue, slot{kind: 'B'})
		c.unsynced = true
	case *pgproto3.Describe:
		if m.ObjectType == 'S' {
			c.ensure(m.Name)
		}
		c.queue = append(c.queue, slot{kind: 'D'})
		c.unsynced = true
	case *pgproto3.Execute:
		c.queue = append(c.queue, slot{kind: 'E'})
		c.unsynced = true
		c.queries++
		sc.pool.queries.Add(1)
	case *pgproto3.Close:
		if m.ObjectType == 'S' && m.Name != "" {
			// Closing a statement the server lacks is not an error, so the
			// Close always goes through and keeps replies in order.
			delete(c.stmts, m.Name)
			delete(sc.prepared, m.Name)
		}
		c.queue = append(c.queue, slot{kind: 'C'})
		c.unsynced = true
	case *pgproto3.Sync:
		c.queue = append(c.queue, slot{kind: 'S'})
		c.unsynced = false
	case *pgproto3.Flush:
		c.unsynced = true
	case *pgproto3.FunctionCall:
		c.queue = append(c.queue, slot{kind: 'F'})
	}
	sc.fe.Send(msg)
	return nil
}

// inject sends a request of the proxy's own whose reply is hidden.
func (c *client) inject(msg pgproto3.FrontendMessage, kind byte, name string) {
	c.sc.fe.Send(msg)
	c.queue = append(c.queue, slot{kind: kind, swallow: true, name: name})
}

// ensure prepares the client's statement name on the attached server
// connection unless it is there already with the same definition.
func (c *client) ensure(name string) {
	if name == "" {
		return
	}
	sc := c.sc
	have, ok := sc.prepared[name]
	st := c.stmts[name]
	if st == nil {
		// Not the client's: another client's statement of that name must
		// not run in its place, so close it and let the server say the
		// statement does not exist, as PostgreSQL would.
		if ok {
			c.inject(&pgproto3.Close{ObjectType: 'S', Name: name}, 'C', "")
			delete(sc.prepared, name)
		}
		return
	}
	key := stmtKey(st)
	if ok && have == key {
		return
	}
	if ok {
		c.inject(&pgproto3.Close{ObjectType: 'S', Name: name}, 'C', "")
	}
	c.inject(st, 'P', name)
	sc.prepared[name] = key
	c.p.m.reprepares.Inc()
}

// noteSessionSQL keeps the prepared-statement bookkeeping right when a
// simple query deallocates statements itself.
func (c *client) noteSessionSQL(sql string) {
	l := strings.ToLower(sql)
	if !strings.Contains(l, "deallocate") && !strings.Contains(l, "discard") {
		return
	}
	f := strings.Fields(strings.TrimRight(l, "; \n"))
	switch {
	case len(f) >= 2 && f[0] == "discard" && f[1] == "all",
		len(f) >= 2 && f[0] == "deallocate" && f[len(f)-1] == "all":
		clear(c.sc.prepared)
	case len(f) >= 2 && f[0] == "deallocate":
		delete(c.sc.prepared, strings.Trim(f[len(f)-1], `"`))
	}
}

// terminal reports whether reply ends the request kind's answer.
func terminal(kind byte, reply pgproto3.BackendMessage) bool {
	switch reply.(type) {
	case *pgproto3.ParseComplete:
		return kind == 'P'
	case *pgproto3.BindComplete:
		return kind == 'B'
	case *pgproto3.CloseComplete:
		return kind == 'C'
	case *pgproto3.RowDescription, *pgproto3.NoData:
		return kind == 'D'
	case *pgproto3.CommandComplete, *pgproto3.EmptyQueryResponse, *pgproto3.PortalSuspended:
		return kind == 'E'
	}
	return false
}

// relay passes server replies to the client until every request sent so
// far has been answered.
func (c *client) relay() error {
	sc := c.sc
	for len(c.queue) > 0 {
		msg, err := sc.fe.Receive()
		if err != nil {
			return err
		}
		head := c.queue[0]
		send := !head.swallow
		switch m := msg.(type) {
		case *pgproto3.ReadyForQuery:
			c.status = m.TxStatus
			if c.status != 'I' && c.onPrimary {
				c.wrote = true
			}
			// Pop through the Sync/Query this answers.
			for len(c.queue) > 0 {
				k := c.queue[0].kind
				c.queue = c.queue[1:]
				if k == 'S' || k == 'Q' || k == 'F' {
					break
				}
			}
			send = true
			if len(c.queue) == 0 && m.TxStatus == 'I' && !c.unsynced && c.wrote && c.onPrimary &&
				len(c.p.s.replicas) > 0 && !c.p.cfg.NoReadYourWrites && c.p.cfg.PoolMode == PoolTransaction {
				c.recordLSN()
				// recordLSN reused the decoder's ReadyForQuery.
				msg = &pgproto3.ReadyForQuery{TxStatus: 'I'}
			}
		case *pgproto3.ErrorResponse:
			send = true
			if head.kind == 'Q' || head.kind == 'F' || head.kind == 'S' {
				break
			}
			if head.kind == 'P' && head.name != "" {
				delete(sc.prepared, head.name)
				if head.swallow {
					delete(c.stmts, head.name)
				}
			}
			// The server skips everything up to the next Sync.
			for len(c.queue) > 0 && c.queue[0].kind != 'S' {
				c.queue = c.queue[1:]
			}
		case *pgproto3.ParameterStatus:
			sc.params[m.Name] = m.Value
			if slices.Contains(trackedParams, m.Name) {
				c.params[m.Name] = m.Value
			}
			send = true
		case *pgproto3.NoticeResponse, *pgproto3.NotificationResponse:
			send = true
		case *pgproto3.CopyInResponse:
			c.be.Send(m)
			if err := c.be.Flush(); err != nil {
				return errClientGone
			}
			if err := c.copyIn(); err != nil {
				return err
			}
			continue
		default:
			if terminal(head.kind, msg) {
				c.queue = c.queue[1:]
			}
		}
		if send {
			c.be.Send(msg)
			if c.fill != "" {
				c.gather(msg)
			}
		}
		if sc.fe.ReadBufferLen() == 0 {
			if err := c.be.Flush(); err != nil {
				return errClientGone
			}
		}
	}
	if err := c.be.Flush(); err != nil {
		return errClientGone
	}
	return nil
}

// gather adds a reply to the result being cached; anything but a plain
// result (an error, a notice, a setting change, COPY) spoils it.
func (c *client) gather(msg pgproto3.BackendMessage) {
	switch msg.(type) {
	case *pgproto3.RowDescription, *pgproto3.DataRow, *pgproto3.CommandComplete, *pgproto3.EmptyQueryResponse:
		if c.fillBad || len(c.fillBuf) > maxCachedResult {
			return
		}
		b, err := msg.Encode(c.fillBuf)
		if err != nil {
			c.fillBad = true
			return
		}
		c.fillBuf = b
	case *pgproto3.ReadyForQuery:
	default:
		c.fillBad = true
	}
}

// copyIn passes COPY FROM STDIN data from the client to the server until
// the client ends or aborts it.
func (c *client) copyIn() error {
	sc := c.sc
	for n := 1; ; n++ {
		msg, err := c.be.Receive()
		if err != nil {
			// The client vanished mid-COPY: abort it so the server is
			// usable again, then report the client gone.
			sc.fe.Send(&pgproto3.CopyFail{Message: "client connection lost"})
			_ = sc.fe.Flush()
			return errClientGone
		}
		sc.fe.Send(msg)
		switch msg.(type) {
		case *pgproto3.CopyDone, *pgproto3.CopyFail:
			return sc.fe.Flush()
		case *pgproto3.Sync:
			c.queue = append(c.queue, slot{kind: 'S'})
		}
		if n%64 == 0 {
			if err := sc.fe.Flush(); err != nil {
				return err
			}
		}
	}
}
