package sessions

import (
	"crypto/rand"
	"maps"
	"math"
	"slices"
	"time"
)

// Keys Django's auth and session machinery keep inside a session.
const (
	KeyUserID      = "_auth_user_id"
	KeyUserBackend = "_auth_user_backend"
	KeyUserHash    = "_auth_user_hash"
	KeyExpiry      = "_session_expiry"
)

// Session is one Django session: a key naming it in its store and a dict of
// values. It is not safe for concurrent use; each request owns its own.
//
// Values use the types of package pyjson (strings, int64, *big.Int,
// float64, bool, nil, []any, map[string]any); sessions read from a pickle
// store may also hold time.Time, time.Duration and []byte, which only a
// pickle serializer can write back.
type Session struct {
	key      string
	data     map[string]any
	modified bool
	// oldKey is a key the store must delete on the next save: set by Flush
	// and CycleKey, as Django deletes the old row or cache entry.
	oldKey string
}

// NewSession returns an empty session with no key; a store gives it one
// when it is first saved.
func NewSession() *Session { return &Session{data: map[string]any{}} }

func newLoaded(key string, data map[string]any) *Session {
	if data == nil {
		data = map[string]any{}
	}
	return &Session{key: key, data: data}
}

// Key is the session key: the random 32-character name of a db or cache
// session, the signed cookie itself for signed_cookies, "" for a session
// not yet saved.
func (s *Session) Key() string { return s.key }

// Get returns a value.
func (s *Session) Get(name string) (any, bool) {
	v, ok := s.data[name]
	return v, ok
}

// String returns a string value; ok is false when it is missing or not a string.
func (s *Session) String(name string) (string, bool) {
	v, ok := s.data[name].(string)
	return v, ok
}

// Set stores a value and marks the session modified.
func (s *Session) Set(name string, v any) {
	s.data[name] = v
	s.modified = true
}

// Delete removes a value.
func (s *Session) Delete(name string) {
	if _, ok := s.data[name]; ok {
		delete(s.data, name)
		s.modified = true
	}
}

// Keys lists the value names, sorted.
func (s *Session) Keys() []string { return slices.Sorted(maps.Keys(s.data)) }

// Len is the number of values.
func (s *Session) Len() int { return len(s.data) }

// Values returns a copy of the session dict.
func (s *Session) Values() map[string]any { return maps.Clone(s.data) }

// Modified reports whether the session must be saved.
func (s *Session) Modified() bool { return s.modified }

// IsEmpty is Django's is_empty: no key and no data.
func (s *Session) IsEmpty() bool { return s.key == "" && len(s.data) == 0 }

// Clear removes every value (Django's session.clear()).
func (s *Session) Clear() {
	s.data = map[string]any{}
	s.modified = true
}

// Flush clears the session and drops its key; the store deletes the old
// entry on the next save (Django's flush(), what logout does).
func (s *Session) Flush() {
	s.Clear()
	if s.key != "" && s.oldKey == "" {
		s.oldKey = s.key
	}
	s.key = ""
}

// CycleKey keeps the data under a new key and deletes the old one on the
// next save, as Django does at login to prevent session fixation.
func (s *Session) CycleKey() {
	if s.key != "" && s.oldKey == "" {
		s.oldKey = s.key
	}
	s.key = ""
	s.modified = true
}

// SetExpiry sets the per-session expiry like Django's set_expiry: nil
// restores the global policy; an int is seconds of inactivity (0 means at
// browser close); a time.Time is a fixed moment; a time.Duration is that
// long from now. Note that Django's JSON serializer cannot store a moment
// (Django's own rule); use seconds unless the store uses pickle.
func (s *Session) SetExpiry(v any, now time.Time) {
	switch x := v.(type) {
	case nil:
		s.Delete(KeyExpiry)
	case time.Duration:
		s.Set(KeyExpiry, now.Add(x))
	case int:
		s.Set(KeyExpiry, int64(x))
	default:
		s.Set(KeyExpiry, v)
	}
}

// ExpiryAge is Django's get_expiry_age: seconds until the session expires,
// from _session_expiry if set, else cookieAge.
func (s *Session) ExpiryAge(now time.Time, cookieAge time.Duration) time.Duration {
	switch x := s.data[KeyExpiry].(type) {
	case time.Time:
		// Python's delta.days*86400 + delta.seconds floors to whole seconds.
		return time.Duration(math.Floor(x.Sub(now).Seconds())) * time.Second
	case int64:
		if x != 0 {
			return time.Duration(x) * time.Second
		}
	case float64:
		if x != 0 {
			return time.Duration(x * float64(time.Second))
		}
	}
	return cookieAge
}

// ExpiryDate is Django's get_expiry_date.
func (s *Session) ExpiryDate(now time.Time, cookieAge time.Duration) time.Time {
	if t, ok := s.data[KeyExpiry].(time.Time); ok {
		return t
	}
	return now.Add(s.ExpiryAge(now, cookieAge))
}

// ExpireAtBrowserClose is Django's get_expire_at_browser_close: whether the
// cookie should be a browser-session cookie. def is
// SESSION_EXPIRE_AT_BROWSER_CLOSE.
func (s *Session) ExpireAtBrowserClose(def bool) bool {
	v, ok := s.data[KeyExpiry]
	if !ok || v == nil {
		return def
	}
	switch x := v.(type) {
	case int64:
		return x == 0
	case float64:
		return x == 0
	}
	return false
}

// validKey is Django's _validate_session_key (at least 8 characters), plus
// the 40-character limit of the django_session column: anything longer can
// name no stored session.
func validKey(k string) bool { return len(k) >= 8 && len(k) <= 40 }

const keyChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// NewKey returns a fresh session key as Django makes them: 32 characters
// from a-z0-9 (about 165 bits), drawn without modulo bias.
func NewKey() string {
	var out [32]byte
	var buf [64]byte
	n := 0
	for n < len(out) {
		_, _ = rand.Read(buf[:]) // crypto/rand.Read never fails
		for _, b := range buf {
			// 252 = 7*36: reject the top values so every character is
			// equally likely.
			if b < 252 && n < len(out) {
				out[n] = keyChars[int(b)%36]
				n++
			}
		}
	}
	return string(out[:])
}
