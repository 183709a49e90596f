package dbproxy

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// errNoPassthrough means no client has logged in with SCRAM yet, so the
// proxy holds nothing to log in to the server with.
var errNoPassthrough = errors.New("dbproxy: no password for the server and no SCRAM client key learnt yet")

// passthrough is what a SCRAM client login taught the proxy about a user
// whose plain password it does not know: the ClientKey recovered from the
// proof, with the verifier it matched. With them the proxy can answer the
// server's SCRAM challenge as that user, as PgBouncer does, provided the
// server stores the same verifier (as with auth_query). An md5 secret
// answers an md5 challenge by itself.
type passthrough struct {
	clientKey []byte
	secret    *scramSecret
	md5       string
}

type passthroughs struct {
	mu sync.Mutex
	m  map[string]passthrough
}

func (ps *passthroughs) get(user string) (passthrough, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	v, ok := ps.m[user]
	return v, ok
}

func (ps *passthroughs) set(user string, v passthrough) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m == nil {
		ps.m = map[string]passthrough{}
	}
	ps.m[user] = v
}

// loginWithKeys opens a server connection for cfg.User authenticating with
// pt instead of a password. It returns what pgconn's Hijack would.
func loginWithKeys(ctx context.Context, cfg *pgconn.Config, pt passthrough) (*pgconn.HijackedConn, error) {
	d := net.Dialer{}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	fail := func(err error) (*pgconn.HijackedConn, error) {
		conn.Close()
		return nil, fmt.Errorf("dbproxy: log in to %s as %s: %w", addr, cfg.User, err)
	}
	if cfg.TLSConfig != nil {
		buf, _ := (&pgproto3.SSLRequest{}).Encode(nil)
		if _, err := conn.Write(buf); err != nil {
			return fail(err)
		}
		var b [1]byte
		if _, err := conn.Read(b[:]); err != nil {
			return fail(err)
		}
		switch {
		case b[0] == 'S':
			tc := tls.Client(conn, cfg.TLSConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				return fail(err)
			}
			conn = tc
		case !plainAllowed(cfg):
			return fail(errors.New("server refused TLS"))
		}
	}
	fe := pgproto3.NewFrontend(conn, conn)
	params := map[string]string{"user": cfg.User, "database": cfg.Database}
	for k, v := range cfg.RuntimeParams {
		params[k] = v
	}
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	if err := fe.Flush(); err != nil {
		return fail(err)
	}
	hc := &pgconn.HijackedConn{Conn: conn, ParameterStatuses: map[string]string{}, Frontend: fe, Config: cfg}
	for {
		msg, err := fe.Receive()
		if err != nil {
			return fail(err)
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationOk:
		case *pgproto3.AuthenticationMD5Password:
			if pt.md5 == "" {
				return fail(errors.New("server asks for md5 and no md5 secret is known"))
			}
			sum := md5.Sum(append([]byte(pt.md5[3:]), m.Salt[:]...))
			fe.Send(&pgproto3.PasswordMessage{Password: "md5" + hex.EncodeToString(sum[:])})
			if err := fe.Flush(); err != nil {
				return fail(err)
			}
		case *pgproto3.AuthenticationSASL:
			if pt.clientKey == nil {
				return fail(errNoPassthrough)
			}
			if err := scramClient(fe, pt); err != nil {
				return fail(err)
			}
		case *pgproto3.ParameterStatus:
			hc.ParameterStatuses[m.Name] = m.Value
		case *pgproto3.BackendKeyData:
			hc.PID, hc.SecretKey = m.ProcessID, append([]byte(nil), m.SecretKey...)
		case *pgproto3.ErrorResponse:
			return fail(fmt.Errorf("%s (SQLSTATE %s)", m.Message, m.Code))
		case *pgproto3.ReadyForQuery:
			hc.TxStatus = m.TxStatus
			_ = conn.SetDeadline(time.Time{})
			return hc, nil
		case *pgproto3.NoticeResponse:
		default:
			return fail(fmt.Errorf("unexpected %T during login", msg))
		}
	}
}

func plainAllowed(cfg *pgconn.Config) bool {
	for _, fb := range cfg.Fallbacks {
		if fb.TLSConfig == nil {
			return true
		}
	}
	return false
}

// scramClient answers a SCRAM-SHA-256 challenge with a known ClientKey.
func scramClient(fe *pgproto3.Frontend, pt passthrough) error {
	nb := make([]byte, 18)
	_, _ = rand.Read(nb)
	cnonce := base64.RawStdEncoding.EncodeToString(nb)
	bare := "n=,r=" + cnonce
	fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,," + bare)})
	if err := fe.Flush(); err != nil {
		return err
	}
	msg, err := fe.Receive()
	if err != nil {
		return err
	}
	cont, ok := msg.(*pgproto3.AuthenticationSASLContinue)
	if !ok {
		return fmt.Errorf("expected SASLContinue, got %T", msg)
	}
	serverFirst := string(cont.Data)
	var nonce, salt string
	iter := 0
	for _, attr := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(attr, "r="):
			nonce = attr[2:]
		case strings.HasPrefix(attr, "s="):
			salt = attr[2:]
		case strings.HasPrefix(attr, "i="):
			iter, _ = strconv.Atoi(attr[2:])
		}
	}
	if !strings.HasPrefix(nonce, cnonce) || salt != base64.StdEncoding.EncodeToString(pt.secret.salt) || iter != pt.secret.iter {
		return errors.New("server's SCRAM verifier differs from the one the client logged in with")
	}
	withoutProof := "c=biws,r=" + nonce
	authMsg := bare + "," + serverFirst + "," + withoutProof
	sig := hmacSHA256(pt.secret.storedKey, authMsg)
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = pt.clientKey[i] ^ sig[i]
	}
	fe.Send(&pgproto3.SASLResponse{Data: []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))})
	if err := fe.Flush(); err != nil {
		return err
	}
	msg, err = fe.Receive()
	if err != nil {
		return err
	}
	switch m := msg.(type) {
	case *pgproto3.AuthenticationSASLFinal:
		want := "v=" + base64.StdEncoding.EncodeToString(hmacSHA256(pt.secret.serverKey, authMsg))
		if subtle.ConstantTimeCompare([]byte(want), m.Data) != 1 {
			return errors.New("server's SCRAM signature is wrong")
		}
		return nil
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("%s (SQLSTATE %s)", m.Message, m.Code)
	}
	return fmt.Errorf("expected SASLFinal, got %T", msg)
}
