// Package pyjson reads and writes JSON the way Python's json module does for
// Django: integers stay integers of any size, floats stay floats, and
// output escapes every non-ASCII character (Python's ensure_ascii), so the
// bytes read back unchanged whether Python decodes them as UTF-8 or as
// latin-1.
//
// Decoded values use these Go types, shared with package pickle:
//
//	None → nil        bool → bool        str → string
//	int → int64, or *big.Int past 64 bits
//	float → float64   list → []any       dict → map[string]any
//
// Marshal accepts those types and the other Go integer, float, slice and
// map[string] types; it refuses values JSON cannot carry (NaN, Infinity,
// time.Time) with an *UnsupportedError rather than writing something
// Python would read differently.
//
// Usage:
//
//	b, err := pyjson.Marshal(map[string]any{"name": "José"}, pyjson.Compact)
//	// b == `{"name":"Jos\u00e9"}`
//	v, err := pyjson.Unmarshal(b)
package pyjson
