package signing

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
)

// Errors. A value whose signature matches none of the keys is
// ErrBadSignature; a valid but too old one is an *ExpiredError, which also
// matches ErrBadSignature (Django's SignatureExpired subclasses BadSignature).
// ErrMalformed means a correctly signed value could not be decoded.
var (
	ErrBadSignature = errors.New("signing: bad signature")
	ErrMalformed    = errors.New("signing: malformed signed value")
	ErrNoKey        = errors.New("signing: no secret key")
)

// ExpiredError reports a timestamped value older than the allowed age.
type ExpiredError struct {
	Age, MaxAge time.Duration
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("signing: signature age %s > %s", e.Age, e.MaxAge)
}

// Is makes errors.Is(err, ErrBadSignature) true, as in Django.
func (e *ExpiredError) Is(target error) bool { return target == ErrBadSignature }

// Keys are the secrets a signer uses: Current is SECRET_KEY, Fallbacks is
// SECRET_KEY_FALLBACKS in order. Only Current signs; all verify.
type Keys struct {
	Current   []byte
	Fallbacks [][]byte
}

func (k Keys) all() [][]byte {
	out := make([][]byte, 0, 1+len(k.Fallbacks))
	out = append(out, k.Current)
	return append(out, k.Fallbacks...)
}

// WithPrefix returns the keys each prefixed with p. Django's cookie signer
// (set_signed_cookie) uses the prefix "django.http.cookies".
func (k Keys) WithPrefix(p string) Keys {
	pre := func(b []byte) []byte { return append([]byte(p), b...) }
	out := Keys{Current: pre(k.Current)}
	for _, f := range k.Fallbacks {
		out.Fallbacks = append(out.Fallbacks, pre(f))
	}
	return out
}

// Algorithm is the hash behind a salted HMAC.
type Algorithm int

const (
	SHA256 Algorithm = iota // Django 3.1+ default
	SHA1                    // Django ≤ 3.0, and 3.1/3.2 with DEFAULT_HASHING_ALGORITHM="sha1"
)

func (a Algorithm) new() func() hash.Hash {
	if a == SHA1 {
		return sha1.New
	}
	return sha256.New
}

// DeriveKey is the first half of Django's salted_hmac: H(salt ‖ secret).
func DeriveKey(a Algorithm, salt string, secret []byte) []byte {
	h := a.new()()
	h.Write([]byte(salt))
	h.Write(secret)
	return h.Sum(nil)
}

// SaltedHMAC is Django's django.utils.crypto.salted_hmac(salt, value, secret).digest().
func SaltedHMAC(a Algorithm, salt string, secret, value []byte) []byte {
	m := hmac.New(a.new(), DeriveKey(a, salt, secret))
	m.Write(value)
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

// Config configures a Signer.
type Config struct {
	// Keys are the secret and its fallbacks. Keys.Current is required.
	Keys Keys
	// Salt namespaces the signature. Empty means Django's default for
	// signing.dumps/loads, "django.core.signing". (Django's bare Signer()
	// uses "django.core.signing.Signer".)
	Salt string
	// Algorithm signs new values. SHA256 unless a Django 3.1/3.2 fleet runs
	// with DEFAULT_HASHING_ALGORITHM = "sha1".
	Algorithm Algorithm
	// AcceptSHA1 also accepts SHA-1 signatures, as Django 3.1 and 3.2 do
	// during the upgrade from 3.0. Django 4.0+ reject them.
	AcceptSHA1 bool
	// Serializer turns objects into bytes for Dumps/Loads; nil is JSON as
	// Django's JSONSerializer writes it.
	Serializer Serializer
	// MaxDecompressed bounds the size of an inflated payload (default 8 MiB).
	MaxDecompressed int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Signer signs and verifies values like Django's Signer and TimestampSigner.
// It is safe for concurrent use.
type Signer struct {
	cfg     Config
	sign    []byte   // derived key used to sign
	verify  [][]byte // derived keys tried in order, current first
	verify1 [][]byte // SHA-1 derived keys, when AcceptSHA1
}

// New returns a Signer for cfg, or an error naming the bad field.
func New(cfg Config) (*Signer, error) {
	if len(cfg.Keys.Current) == 0 {
		return nil, fmt.Errorf("%w: Keys.Current is empty", ErrNoKey)
	}
	for i, f := range cfg.Keys.Fallbacks {
		if len(f) == 0 {
			return nil, fmt.Errorf("%w: Keys.Fallbacks[%d] is empty", ErrNoKey, i)
		}
	}
	if cfg.Algorithm != SHA256 && cfg.Algorithm != SHA1 {
		return nil, fmt.Errorf("signing: Config.Algorithm %d is unknown", cfg.Algorithm)
	}
	if cfg.Salt == "" {
		cfg.Salt = "django.core.signing"
	}
	if cfg.Serializer == nil {
		cfg.Serializer = JSON{}
	}
	if cfg.MaxDecompressed <= 0 {
		cfg.MaxDecompressed = 8 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Signer{cfg: cfg}
	salt := cfg.Salt + "signer"
	for _, k := range cfg.Keys.all() {
		s.verify = append(s.verify, DeriveKey(cfg.Algorithm, salt, k))
		if cfg.AcceptSHA1 && cfg.Algorithm != SHA1 {
			s.verify1 = append(s.verify1, DeriveKey(SHA1, salt, k))
		}
	}
	s.sign = s.verify[0]
	return s, nil
}

// Salt returns the configured salt.
func (s *Signer) Salt() string { return s.cfg.Salt }

func mac(a Algorithm, key []byte, value string) []byte {
	m := hmac.New(a.new(), key)
	m.Write([]byte(value))
	return m.Sum(nil)
}

// Signature is the b64 HMAC of value under the current key.
func (s *Signer) Signature(value string) string {
	return b64.EncodeToString(mac(s.cfg.Algorithm, s.sign, value))
}

// Sign returns "value:signature", as Django's Signer.sign.
func (s *Signer) Sign(value string) string {
	return value + ":" + s.Signature(value)
}

// Unsign checks "value:signature" against every key and returns value.
func (s *Signer) Unsign(signed string) (string, error) {
	i := strings.LastIndexByte(signed, ':')
	if i < 0 {
		return "", fmt.Errorf("%w: no separator", ErrBadSignature)
	}
	value, sig := signed[:i], signed[i+1:]
	raw, err := b64.DecodeString(sig)
	if err != nil {
		return "", fmt.Errorf("%w: signature is not base64", ErrBadSignature)
	}
	if s.matches(value, raw) {
		return value, nil
	}
	return "", ErrBadSignature
}

func (s *Signer) matches(value string, sig []byte) bool {
	try := func(a Algorithm, keys [][]byte) bool {
		ok := 0
		for _, k := range keys {
			// Check every key so the time taken does not say which matched.
			ok |= subtle.ConstantTimeCompare(mac(a, k, value), sig)
		}
		return ok == 1
	}
	switch len(sig) {
	case sha256.Size:
		return s.cfg.Algorithm == SHA256 && try(SHA256, s.verify)
	case sha1.Size:
		if s.cfg.Algorithm == SHA1 {
			return try(SHA1, s.verify)
		}
		return try(SHA1, s.verify1)
	}
	return false
}

// SignTimestamp returns "value:base62(now):signature" (TimestampSigner.sign).
func (s *Signer) SignTimestamp(value string) string {
	return s.Sign(value + ":" + EncodeBase62(s.cfg.Now().Unix()))
}

// UnsignTimestamp verifies a TimestampSigner value and returns the value and
// its signing time. maxAge > 0 rejects values signed longer ago with an
// *ExpiredError; like Django, timestamps in the future are not rejected.
func (s *Signer) UnsignTimestamp(signed string, maxAge time.Duration) (string, time.Time, error) {
	v, err := s.Unsign(signed)
	if err != nil {
		return "", time.Time{}, err
	}
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return "", time.Time{}, fmt.Errorf("%w: no timestamp", ErrMalformed)
	}
	ts, err := DecodeBase62(v[i+1:])
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	at := time.Unix(ts, 0)
	if maxAge > 0 {
		// Django compares float seconds: age > max_age.
		if age := s.cfg.Now().Sub(at); age > maxAge {
			return "", time.Time{}, &ExpiredError{Age: age, MaxAge: maxAge}
		}
	}
	return v[:i], at, nil
}

// Dumps serializes obj, optionally zlib-compresses it when that saves at
// least two bytes (marking it with a leading "."), base64s it and signs it
// with a timestamp, as signing.dumps does.
func (s *Signer) Dumps(obj any, compress bool) (string, error) {
	data, err := s.cfg.Serializer.Marshal(obj)
	if err != nil {
		return "", err
	}
	return s.SignTimestamp(encodePayload(data, compress)), nil
}

// Loads reverses Dumps. maxAge > 0 enforces an age limit.
func (s *Signer) Loads(signed string, maxAge time.Duration) (any, error) {
	obj, _, err := s.LoadsAt(signed, maxAge)
	return obj, err
}

// LoadsAt is Loads that also returns when the value was signed.
func (s *Signer) LoadsAt(signed string, maxAge time.Duration) (any, time.Time, error) {
	v, at, err := s.UnsignTimestamp(signed, maxAge)
	if err != nil {
		return nil, time.Time{}, err
	}
	data, err := decodePayload(v, s.cfg.MaxDecompressed)
	if err != nil {
		return nil, time.Time{}, err
	}
	obj, err := s.cfg.Serializer.Unmarshal(data)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return obj, at, nil
}

func encodePayload(data []byte, compress bool) string {
	if compress {
		if z := deflate(data); len(z) < len(data)-1 {
			return "." + b64.EncodeToString(z)
		}
	}
	return b64.EncodeToString(data)
}

func decodePayload(v string, limit int) ([]byte, error) {
	compressed := strings.HasPrefix(v, ".")
	if compressed {
		v = v[1:]
	}
	// Django re-adds "=" padding; tolerate values that still carry it.
	data, err := b64.DecodeString(strings.TrimRight(v, "="))
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64", ErrMalformed)
	}
	if compressed {
		if data, err = inflate(data, limit); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	return data, nil
}

// latin1 turns bytes into the string Python's bytes.decode("latin-1") gives.
func latin1(b []byte) []byte {
	if isASCII(b) {
		return b
	}
	out := make([]byte, 0, len(b)+8)
	for _, c := range b {
		out = append(out, string(rune(c))...)
	}
	return out
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
