package sessions

import (
	"maps"
	"math/big"
	"sync"
	"time"

	"github.com/celeriac/celeriac/sessions/signing"
)

// verifiedCache remembers signed payloads that already passed
// verification, keyed by the exact signed string. A signature binds the
// content, so the same string always decodes to the same dict: a hit skips
// the HMAC, base64, zlib and JSON work (about 20µs for a login session),
// which is most of a signed_cookies check. Only successes are stored, so
// the cache holds nothing an attacker could not already present; the age
// limit is re-checked on every hit.
type verifiedCache struct {
	signer *signing.Signer
	now    func() time.Time
	max    int

	mu      sync.Mutex
	entries map[string]verified
}

type verified struct {
	data     map[string]any
	signedAt time.Time
}

const verifiedCacheSize = 10_000

func newVerifiedCache(s *signing.Signer, now func() time.Time) *verifiedCache {
	return &verifiedCache{signer: s, now: now, max: verifiedCacheSize, entries: map[string]verified{}}
}

// loads is signer.Loads for a session dict, with a private copy returned
// so callers may modify it.
func (c *verifiedCache) loads(signed string, maxAge time.Duration) (map[string]any, error) {
	c.mu.Lock()
	e, ok := c.entries[signed]
	c.mu.Unlock()
	if ok {
		if age := c.now().Sub(e.signedAt); maxAge > 0 && age > maxAge {
			c.mu.Lock()
			delete(c.entries, signed)
			c.mu.Unlock()
			return nil, &signing.ExpiredError{Age: age, MaxAge: maxAge}
		}
		return deepCopy(e.data).(map[string]any), nil
	}
	v, at, err := c.signer.LoadsAt(signed, maxAge)
	if err != nil {
		return nil, err
	}
	m, err := asDict(v)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.entries) >= c.max {
		// Evict an arbitrary tenth; map iteration order is random enough
		// and this keeps the bound without per-entry bookkeeping.
		n := c.max / 10
		for k := range c.entries {
			if n == 0 {
				break
			}
			delete(c.entries, k)
			n--
		}
	}
	c.entries[signed] = verified{data: deepCopy(m).(map[string]any), signedAt: at}
	c.mu.Unlock()
	return m, nil
}

// deepCopy copies the mutable parts of a decoded value.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := maps.Clone(x)
		for k, e := range out {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	case []byte:
		return append([]byte(nil), x...)
	case *big.Int:
		return new(big.Int).Set(x)
	}
	return v
}
