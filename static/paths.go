package static

import (
	"strings"
	"unicode/utf8"
)

// pathVerdict is what resolvePath decided about a request path.
type pathVerdict uint8

const (
	pathOK       pathVerdict = iota
	pathBad                  // malformed or hostile: 400
	pathNotFound             // well-formed but outside what is served: 404
)

// resolvePath turns a request path into the index key it may name.
//
// decoded is the percent-decoded path (r.URL.Path) and raw its escaped form
// as sent (r.URL.EscapedPath()). Files are only ever found by an exact
// lookup of the result in the index built from walking the root, so no
// input can reach a file outside it; these checks exist so that hostile or
// ambiguous paths are refused loudly (400) instead of being looked up:
// encoded '/', '\' or NUL, backslashes, control bytes, invalid UTF-8, empty
// segments ("a//b") and dot segments ("." and "..", however encoded — by
// the time they are decoded they are plain dots). Hidden names (a segment
// starting with '.', other than ".well-known") are not served: 404.
//
// dir is true when the path ends in '/', i.e. names a directory.
func resolvePath(prefix, decoded, raw string) (name string, dir bool, v pathVerdict) {
	if containsFoldEncoded(raw) {
		return "", false, pathBad
	}
	if !strings.HasPrefix(decoded, prefix) {
		return "", false, pathNotFound
	}
	rest := decoded[len(prefix):]
	if !utf8.ValidString(rest) {
		return "", false, pathBad
	}
	if rest == "" {
		return "", true, pathOK // the root directory itself
	}
	if strings.HasSuffix(rest, "/") {
		dir = true
		rest = rest[:len(rest)-1]
	}
	if rest == "" {
		return "", dir, pathOK
	}
	hidden := false
	for seg := range strings.SplitSeq(rest, "/") {
		switch seg {
		case "", ".", "..":
			return "", false, pathBad
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; c < 0x20 || c == 0x7f || c == '\\' {
				return "", false, pathBad
			}
		}
		if seg[0] == '.' && seg != ".well-known" {
			hidden = true
		}
	}
	if hidden {
		return "", false, pathNotFound
	}
	return rest, dir, pathOK
}

// containsFoldEncoded reports whether an escaped path encodes '/', '\' or
// NUL (%2F, %5C, %00 in either case): decoding those would change where
// segment boundaries are, or smuggle a terminator.
func containsFoldEncoded(raw string) bool {
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] != '%' {
			continue
		}
		a, b := raw[i+1], raw[i+2]|0x20
		if (a == '2' && b == 'f') || (a == '5' && b == 'c') || (a == '0' && b == '0') {
			return true
		}
	}
	return false
}
