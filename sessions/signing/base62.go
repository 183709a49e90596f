package signing

import (
	"errors"
	"fmt"
)

const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// EncodeBase62 writes n the way Django's base62 converter does: digits 0-9,
// A-Z, a-z, most significant first, "0" for zero, "-" before a negative.
func EncodeBase62(n int64) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	u := uint64(n)
	if neg {
		u = uint64(-n)
	}
	var buf [12]byte
	i := len(buf)
	for u > 0 {
		i--
		buf[i] = base62Alphabet[u%62]
		u /= 62
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

var errBase62 = errors.New("signing: bad base62 timestamp")

// DecodeBase62 parses what EncodeBase62 writes.
func DecodeBase62(s string) (int64, error) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	// 11 base-62 digits exceed int64; timestamps use 6.
	if s == "" || len(s) > 10 {
		return 0, fmt.Errorf("%w: %q", errBase62, s)
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d int64
		switch {
		case c >= '0' && c <= '9':
			d = int64(c - '0')
		case c >= 'A' && c <= 'Z':
			d = int64(c-'A') + 10
		case c >= 'a' && c <= 'z':
			d = int64(c-'a') + 36
		default:
			return 0, fmt.Errorf("%w: %q", errBase62, s)
		}
		n = n*62 + d
	}
	if neg {
		n = -n
	}
	return n, nil
}
