// Package pickle reads and writes the plain-data subset of Python's pickle
// format that Django session caches hold: django-redis's default
// serializer and Django's PyMemcacheCache both store a session dict as a
// pickle.
//
// The decoder is a whitelist, not an unpickler: it understands the opcodes
// that build strings, bytes, numbers, booleans, None, lists, tuples and
// dicts, and exactly these globals, which it interprets itself (nothing is
// ever looked up, imported or called):
//
//	datetime.datetime, datetime.timezone, datetime.timedelta — dates as
//	    Django's timezone.now() pickles them (e.g. a _session_expiry)
//	pytz._UTC                — Django 3.2's timezone.utc
//	_codecs.encode(s, "latin1") — how protocol 2 spells bytes
//
// Any other global, object construction (NEWOBJ, BUILD, INST, OBJ), sets,
// persistent ids and extension codes are refused with a *ForbiddenError
// before anything else happens, so a hostile pickle in a shared cache can
// at worst fail to load.
//
// Decoded values use the types of package pyjson plus:
//
//	bytes → []byte
//	tuple → []any (as JSON would turn it into a list)
//	datetime → time.Time (a naive datetime is in the Naive location)
//	timedelta → time.Duration
//
// Marshal writes those types as a protocol-4 pickle using the same opcodes,
// which Python 3.4+ reads.
//
// Usage:
//
//	v, err := pickle.Unmarshal(data) // map[string]any for a session
//	b, err := pickle.Marshal(map[string]any{"_auth_user_id": "42"})
package pickle
