// Package signing reads and writes the values that Django's
// django.core.signing produces: Signer.sign, TimestampSigner and
// signing.dumps/loads, including the compressed form and the pre-3.1 SHA-1
// signatures that Django 3.1/3.2 still accept.
//
// A Django site signs its session cookies (signed_cookies engine), its
// database session rows and set_signed_cookie values with these primitives.
// Go services that share the site's SECRET_KEY use this package to read and
// write the same bytes. Keys carry the current SECRET_KEY and the
// SECRET_KEY_FALLBACKS (Django 4.1+): verification tries the current key and
// then every fallback, signing uses the current key only, so a key rotation
// behaves as it does in Django.
//
// Usage:
//
//	keys := signing.Keys{Current: []byte(os.Getenv("DJANGO_SECRET_KEY"))}
//	s := signing.TimestampSigner{Keys: keys, Salt: "django.core.signing"}
//	token, err := s.Dumps(map[string]any{"a": int64(1)}, false)
//	v, err := s.Loads(token, 0) // 0: no max age
//
// Values are the plain data that Django's JSON serializer produces; see
// package pyjson for the mapping to Go types.
package signing
