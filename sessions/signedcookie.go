package sessions

import (
	"context"
	"log/slog"

	"github.com/celeriac/celeriac/sessions/signing"
)

// signedCookieStore is django.contrib.sessions.backends.signed_cookies: the
// cookie is the session, signed with SECRET_KEY; nothing is stored
// server-side, so logging out cannot revoke a copied cookie (only a
// password change can, through the auth hash).
type signedCookieStore struct {
	cfg      Config
	signer   *signing.Signer
	verified *verifiedCache
}

func newSignedCookieStore(cfg Config) (*signedCookieStore, error) {
	s, err := cfg.signer(SaltSignedCookies)
	if err != nil {
		return nil, err
	}
	return &signedCookieStore{cfg: cfg, signer: s, verified: newVerifiedCache(s, cfg.Now)}, nil
}

// Load verifies the cookie against every key and rejects it once it is
// older than CookieAge counted from its signing time. As in Django, a
// per-session _session_expiry does not shorten that.
func (st *signedCookieStore) Load(_ context.Context, cookie string) (*Session, error) {
	if !validSignedKey(cookie) {
		return NewSession(), nil
	}
	m, err := st.verified.loads(cookie, st.cfg.CookieAge)
	if err != nil {
		st.cfg.Logger.Debug("sessions: signed cookie rejected", slog.Any("error", err))
		return NewSession(), nil
	}
	return newLoaded(cookie, m), nil
}

// validSignedKey: Django applies its 8-character minimum to the cookie;
// browsers cap cookies near 4 KiB, so anything far larger is not one.
func validSignedKey(c string) bool { return len(c) >= 8 && len(c) <= 64<<10 }

func (st *signedCookieStore) Save(_ context.Context, s *Session) error {
	tok, err := st.signer.Dumps(s.data, true)
	if err != nil {
		return err
	}
	s.key, s.oldKey, s.modified = tok, "", false
	return nil
}

func (st *signedCookieStore) Delete(context.Context, string) error { return nil }
