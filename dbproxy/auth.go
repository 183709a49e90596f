package dbproxy

import (
	"bufio"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// readUserlist parses a PgBouncer auth_file: one `"user" "secret"` per line,
// a doubled quote standing for a quote, other lines ignored.
func readUserlist(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	users := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		fields, err := quotedFields(line)
		if err != nil || len(fields) < 2 {
			return nil, fmt.Errorf("line %d: want \"user\" \"secret\"", n)
		}
		users[fields[0]] = fields[1]
	}
	return users, sc.Err()
}

func quotedFields(line string) ([]string, error) {
	var out []string
	for i := 0; i < len(line); {
		if line[i] == ' ' || line[i] == '\t' {
			i++
			continue
		}
		if line[i] != '"' {
			return nil, errors.New("unquoted field")
		}
		var b strings.Builder
		i++
		for {
			if i >= len(line) {
				return nil, errors.New("unterminated quote")
			}
			if line[i] == '"' {
				if i+1 < len(line) && line[i+1] == '"' {
					b.WriteByte('"')
					i += 2
					continue
				}
				i++
				break
			}
			b.WriteByte(line[i])
			i++
		}
		out = append(out, b.String())
	}
	return out, nil
}

// scramSecret is a parsed SCRAM-SHA-256 verifier.
type scramSecret struct {
	iter                 int
	salt                 []byte
	storedKey, serverKey []byte
}

// parseSCRAM reads SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>.
func parseSCRAM(s string) (*scramSecret, bool) {
	rest, ok := strings.CutPrefix(s, "SCRAM-SHA-256$")
	if !ok {
		return nil, false
	}
	a, b, ok := strings.Cut(rest, "$")
	if !ok {
		return nil, false
	}
	it, salt64, ok1 := strings.Cut(a, ":")
	sk64, srv64, ok2 := strings.Cut(b, ":")
	if !ok1 || !ok2 {
		return nil, false
	}
	iter, err := strconv.Atoi(it)
	salt, err2 := base64.StdEncoding.DecodeString(salt64)
	sk, err3 := base64.StdEncoding.DecodeString(sk64)
	srv, err4 := base64.StdEncoding.DecodeString(srv64)
	if err != nil || err2 != nil || err3 != nil || err4 != nil || iter <= 0 {
		return nil, false
	}
	return &scramSecret{iter: iter, salt: salt, storedKey: sk, serverKey: srv}, true
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// scramFromPassword derives a verifier from a plain password.
func scramFromPassword(password string) (*scramSecret, error) {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	const iter = 4096
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, 32)
	if err != nil {
		return nil, err
	}
	ck := hmacSHA256(salted, "Client Key")
	sk := sha256.Sum256(ck)
	return &scramSecret{iter: iter, salt: salt, storedKey: sk[:], serverKey: hmacSHA256(salted, "Server Key")}, nil
}

// SCRAMSecret returns the SCRAM-SHA-256 verifier of password, in the form
// PostgreSQL stores and a userlist accepts.
func SCRAMSecret(password string) (string, error) {
	s, err := scramFromPassword(password)
	if err != nil {
		return "", err
	}
	b := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", s.iter, b(s.salt), b(s.storedKey), b(s.serverKey)), nil
}

// md5Secret is PostgreSQL's md5 password hash: "md5" + md5(password+user).
func md5Secret(user, password string) string {
	sum := md5.Sum([]byte(password + user))
	return "md5" + hex.EncodeToString(sum[:])
}

// authenticate runs the client side of authentication on be for user whose
// stored secret is secret ("" with trust). It returns the plain password
// when the secret is one, for use towards the server.
func (p *Proxy) authenticate(be *pgproto3.Backend, user, secret string, found bool) error {
	if p.cfg.AuthType == AuthTrust {
		return nil
	}
	if !found {
		// Go through the motions with a made-up verifier so an unknown user
		// looks like a wrong password.
		secret = "SCRAM-SHA-256$4096:AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	}
	scram, isSCRAM := parseSCRAM(secret)
	isMD5 := len(secret) == 35 && strings.HasPrefix(secret, "md5")
	useMD5 := isMD5 || (!isSCRAM && p.cfg.AuthType == AuthMD5)
	if useMD5 {
		err := authMD5(be, user, secret, isMD5)
		if err == nil && isMD5 {
			p.pass.set(user, passthrough{md5: secret})
		}
		return err
	}
	if !isSCRAM {
		var err error
		if scram, err = scramFromPassword(secret); err != nil {
			return err
		}
	}
	clientKey, err := authSCRAM(be, scram)
	if !found && err == nil {
		err = ErrAuth
	}
	if err == nil && isSCRAM {
		p.pass.set(user, passthrough{clientKey: clientKey, secret: scram})
	}
	return err
}

func authMD5(be *pgproto3.Backend, user, secret string, hashed bool) error {
	var salt [4]byte
	_, _ = rand.Read(salt[:])
	be.Send(&pgproto3.AuthenticationMD5Password{Salt: salt})
	if err := be.Flush(); err != nil {
		return err
	}
	if err := be.SetAuthType(pgproto3.AuthTypeMD5Password); err != nil {
		return err
	}
	msg, err := be.Receive()
	if err != nil {
		return err
	}
	pw, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		return fmt.Errorf("%w: expected a password message, got %T", ErrAuth, msg)
	}
	if !hashed {
		secret = md5Secret(user, secret)
	}
	sum := md5.Sum(append([]byte(secret[3:]), salt[:]...))
	want := "md5" + hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(want), []byte(pw.Password)) != 1 {
		return ErrAuth
	}
	return nil
}

// authSCRAM is the server side of SCRAM-SHA-256 (RFC 5802/7677), without
// channel binding: TLS ends at the proxy, so -PLUS cannot be offered.
// It returns the ClientKey the client proved it has.
func authSCRAM(be *pgproto3.Backend, sec *scramSecret) ([]byte, error) {
	be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}})
	if err := be.Flush(); err != nil {
		return nil, err
	}
	if err := be.SetAuthType(pgproto3.AuthTypeSASL); err != nil {
		return nil, err
	}
	msg, err := be.Receive()
	if err != nil {
		return nil, err
	}
	init, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok || init.AuthMechanism != "SCRAM-SHA-256" {
		return nil, fmt.Errorf("%w: expected SCRAM-SHA-256 initial response", ErrAuth)
	}
	first := string(init.Data)
	// gs2 header: "n,," or "y,,"; "p=" asks for channel binding we never offered.
	if !strings.HasPrefix(first, "n,") && !strings.HasPrefix(first, "y,") {
		return nil, fmt.Errorf("%w: unsupported SCRAM gs2 header", ErrAuth)
	}
	idx := strings.Index(first[2:], ",")
	if idx < 0 {
		return nil, fmt.Errorf("%w: malformed client-first-message", ErrAuth)
	}
	gs2 := first[:2+idx+1]
	bare := first[len(gs2):]
	var cnonce string
	for _, attr := range strings.Split(bare, ",") {
		if v, ok := strings.CutPrefix(attr, "r="); ok {
			cnonce = v
		}
	}
	if cnonce == "" {
		return nil, fmt.Errorf("%w: client nonce missing", ErrAuth)
	}
	sn := make([]byte, 18)
	_, _ = rand.Read(sn)
	nonce := cnonce + base64.RawStdEncoding.EncodeToString(sn)
	serverFirst := fmt.Sprintf("r=%s,s=%s,i=%d", nonce, base64.StdEncoding.EncodeToString(sec.salt), sec.iter)
	be.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)})
	if err := be.Flush(); err != nil {
		return nil, err
	}
	if err := be.SetAuthType(pgproto3.AuthTypeSASLContinue); err != nil {
		return nil, err
	}
	msg, err = be.Receive()
	if err != nil {
		return nil, err
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return nil, fmt.Errorf("%w: expected SCRAM client-final-message", ErrAuth)
	}
	final := string(resp.Data)
	pi := strings.LastIndex(final, ",p=")
	if pi < 0 {
		return nil, fmt.Errorf("%w: proof missing", ErrAuth)
	}
	withoutProof := final[:pi]
	proof, err := base64.StdEncoding.DecodeString(final[pi+3:])
	if err != nil || len(proof) != sha256.Size {
		return nil, fmt.Errorf("%w: bad proof", ErrAuth)
	}
	if !strings.Contains(","+withoutProof+",", ",r="+nonce+",") ||
		!strings.HasPrefix(withoutProof, "c="+base64.StdEncoding.EncodeToString([]byte(gs2))) {
		return nil, fmt.Errorf("%w: nonce or channel binding mismatch", ErrAuth)
	}
	authMsg := bare + "," + serverFirst + "," + withoutProof
	sig := hmacSHA256(sec.storedKey, authMsg)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	stored := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(stored[:], sec.storedKey) != 1 {
		return nil, ErrAuth
	}
	serverSig := hmacSHA256(sec.serverKey, authMsg)
	be.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte("v=" + base64.StdEncoding.EncodeToString(serverSig))})
	return clientKey, nil
}
