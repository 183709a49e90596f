package sessions

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/celeriac/celeriac/sessions/signing"
	"github.com/jackc/pgx/v5"
)

// dbStore is django.contrib.sessions.backends.db: one row per session in
// django_session (session_key, session_data, expire_date), the data signed
// with SECRET_KEY under the store's key salt.
type dbStore struct {
	cfg      Config
	signer   *signing.Signer
	verified *verifiedCache
	q        struct{ load, insert, update, del string }
}

func newDBStore(cfg Config) (*dbStore, error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("%w: Config.DB is required for the %s engine", ErrConfig, cfg.Engine)
	}
	s, err := cfg.signer(cfg.KeySalt)
	if err != nil {
		return nil, err
	}
	st := &dbStore{cfg: cfg, signer: s, verified: newVerifiedCache(s, cfg.Now)}
	t := pgx.Identifier(strings.Split(cfg.Table, ".")).Sanitize()
	st.q.load = "SELECT session_data, expire_date FROM " + t + " WHERE session_key = $1 AND expire_date > $2"
	st.q.insert = "INSERT INTO " + t + " (session_key, session_data, expire_date) VALUES ($1, $2, $3) ON CONFLICT (session_key) DO NOTHING"
	st.q.update = "UPDATE " + t + " SET session_data = $2, expire_date = $3 WHERE session_key = $1"
	st.q.del = "DELETE FROM " + t + " WHERE session_key = $1"
	return st, nil
}

// row loads a live row: its data and expiry, or ok=false.
func (st *dbStore) row(ctx context.Context, key string) (data string, expire time.Time, ok bool, err error) {
	err = st.cfg.DB.QueryRow(ctx, st.q.load, key, st.cfg.Now()).Scan(&data, &expire)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("%w: load from %s: %w", ErrBackend, st.cfg.Table, err)
	}
	return data, expire, true, nil
}

func (st *dbStore) Load(ctx context.Context, key string) (*Session, error) {
	s, _, err := st.load(ctx, key)
	return s, err
}

func (st *dbStore) load(ctx context.Context, key string) (*Session, time.Time, error) {
	if !validKey(key) {
		return NewSession(), time.Time{}, nil
	}
	data, expire, ok, err := st.row(ctx, key)
	if err != nil || !ok {
		return NewSession(), time.Time{}, err
	}
	// Django keeps the key of a row it cannot decode: the session is empty
	// but a later save overwrites that row.
	return newLoaded(key, st.decode(data)), expire, nil
}

// decode is Django's SessionBase.decode: the signed format, then (3.1/3.2
// only) the pre-3.1 one; anything else is an empty session.
func (st *dbStore) decode(data string) map[string]any {
	m, err := st.verified.loads(data, 0)
	if err == nil {
		return m
	}
	if st.cfg.AcceptSHA1 && errors.Is(err, signing.ErrBadSignature) {
		if m, lerr := decodeLegacy(st.cfg.Keys, st.cfg.KeySalt, data); lerr == nil {
			return m
		}
	}
	st.cfg.Logger.Debug("sessions: session data corrupted", slog.Any("error", err))
	return map[string]any{}
}

// decodeLegacy reads the pre-3.1 encoding: standard base64 of
// hex(HMAC-SHA1) ":" serialized, keyed with "django.contrib.sessions" +
// the class name (no dot) + SECRET_KEY.
func decodeLegacy(keys signing.Keys, keySalt, data string) (map[string]any, error) {
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, err
	}
	mac, payload, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, errors.New("sessions: legacy data has no hash")
	}
	salt := "django.contrib.sessions" + keySalt[strings.LastIndexByte(keySalt, '.')+1:]
	for _, k := range append([][]byte{keys.Current}, keys.Fallbacks...) {
		if hmacEqualHex(mac, signing.SaltedHMAC(signing.SHA1, salt, k, []byte(payload))) {
			v, err := anySerializer{}.Unmarshal([]byte(payload))
			if err != nil {
				return nil, err
			}
			return asDict(v)
		}
	}
	return nil, signing.ErrBadSignature
}

// encode is SessionBase.encode: signing.dumps(..., compress=True).
func (st *dbStore) encode(s *Session) (string, error) {
	return st.signer.Dumps(s.data, true)
}

func (st *dbStore) Save(ctx context.Context, s *Session) error {
	data, err := st.encode(s)
	if err != nil {
		return err
	}
	expire := s.ExpiryDate(st.cfg.Now(), st.cfg.CookieAge)
	if s.key == "" {
		if err := st.create(ctx, s, data, expire); err != nil {
			return err
		}
	} else {
		tag, err := st.cfg.DB.Exec(ctx, st.q.update, s.key, data, expire)
		if err != nil {
			return fmt.Errorf("%w: update %s: %w", ErrBackend, st.cfg.Table, err)
		}
		if tag.RowsAffected() == 0 {
			return ErrSessionGone
		}
	}
	return st.finishSave(ctx, s)
}

// create inserts under a fresh key, retrying on the (vanishingly unlikely)
// collision as Django does.
func (st *dbStore) create(ctx context.Context, s *Session, data string, expire time.Time) error {
	for range 10 {
		key := NewKey()
		tag, err := st.cfg.DB.Exec(ctx, st.q.insert, key, data, expire)
		if err != nil {
			return fmt.Errorf("%w: insert into %s: %w", ErrBackend, st.cfg.Table, err)
		}
		if tag.RowsAffected() == 1 {
			s.key = key
			return nil
		}
	}
	return fmt.Errorf("%w: could not create a unique session key", ErrBackend)
}

func (st *dbStore) finishSave(ctx context.Context, s *Session) error {
	if s.oldKey != "" {
		if err := st.Delete(ctx, s.oldKey); err != nil {
			return err
		}
		s.oldKey = ""
	}
	s.modified = false
	return nil
}

func (st *dbStore) Delete(ctx context.Context, key string) error {
	if _, err := st.cfg.DB.Exec(ctx, st.q.del, key); err != nil {
		return fmt.Errorf("%w: delete from %s: %w", ErrBackend, st.cfg.Table, err)
	}
	return nil
}

// hmacEqualHex compares a hex MAC from the outside with the expected bytes
// in constant time.
func hmacEqualHex(got string, want []byte) bool {
	raw, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(raw, want) == 1
}
