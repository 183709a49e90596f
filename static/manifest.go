package static

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
)

// Manifest is the part of Django's staticfiles.json that the server uses:
// Paths maps each original name ("css/app.css") to its hashed name
// ("css/app.f2fcfe612a1d.css"). Hashed names are immutable: any name that is
// a value of Paths gets the one-year immutable Cache-Control.
type Manifest struct {
	Version string
	Paths   map[string]string
	// Skipped lists entries left out because a name was absolute, had dot
	// segments, backslashes or a hidden segment: such names are never served.
	Skipped []string
}

// ParseManifest reads a staticfiles.json written by Django's
// ManifestStaticFilesStorage. Versions "1.0" (Django < 4.2) and "1.1" (4.2+,
// which adds a "hash" key) are accepted; unknown keys are ignored. A name
// that is absolute, has dot segments or backslashes is an error: the
// manifest decides what is served as immutable, so it is checked as strictly
// as a request, and such entries are dropped (listed in Skipped).
func ParseManifest(data []byte) (*Manifest, error) {
	var raw struct {
		Version *string           `json:"version"`
		Paths   map[string]string `json:"paths"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if raw.Version == nil {
		return nil, fmt.Errorf("%w: no version", ErrBadManifest)
	}
	switch *raw.Version {
	case "1.0", "1.1":
	default:
		return nil, fmt.Errorf("%w: unsupported version %q (want 1.0 or 1.1)", ErrBadManifest, *raw.Version)
	}
	if raw.Paths == nil {
		return nil, fmt.Errorf("%w: no paths", ErrBadManifest)
	}
	m := &Manifest{Version: *raw.Version, Paths: raw.Paths}
	for k, v := range raw.Paths {
		if !manifestName(k) || !manifestName(v) {
			m.Skipped = append(m.Skipped, k)
			delete(m.Paths, k)
		}
	}
	sort.Strings(m.Skipped)
	return m, nil
}

// manifestName reports whether a manifest name is a clean relative path that
// resolvePath could produce.
func manifestName(n string) bool {
	if n == "" || strings.HasPrefix(n, "/") || path.Clean(n) != n {
		return false
	}
	_, _, v := resolvePath("/", "/"+n, "/"+n)
	return v == pathOK
}

// hashedNames returns the set of hashed names (the values of Paths).
func (m *Manifest) hashedNames() map[string]struct{} {
	set := make(map[string]struct{}, len(m.Paths))
	for _, v := range m.Paths {
		set[v] = struct{}{}
	}
	return set
}

// looksHashed reports whether a name has the shape Django gives hashed
// files, "stem.<12 hex>.ext" or "stem.<12 hex>": a miss on such a name may
// be an asset of another release, so the store is re-read before the 404.
func looksHashed(name string) bool {
	base := path.Base(name)
	for {
		i := strings.LastIndexByte(base, '.')
		if i < 0 {
			return false
		}
		seg := base[i+1:]
		if len(seg) == 12 && isLowerHex(seg) {
			return i > 0
		}
		base = base[:i]
	}
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
