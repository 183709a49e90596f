package static

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Cache-Control values. Hashed names never change content, so browsers and
// CDNs may keep them a year without revalidating; misses must not be cached
// at all, or a CDN keeps serving the 404 of an asset that a deploy is about
// to add.
const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheNoStore   = "no-store"
)

// file is a servable file: its content plus the response headers decided
// for each representation, computed once per index build.
type file struct {
	*content
	immutable bool
	fromStore bool
	reps      []rep
	vary      bool
}

// rep is one representation with its precomputed headers, both as an
// http.Header (for net/http) and as wire bytes (for the fast path), built
// from one list so the two cannot disagree.
type rep struct {
	repContent
	header    http.Header // 200
	header304 http.Header
	wire      []byte // "Name: value\r\n"… for a 200, without Date and status line
	wire304   []byte
}

// decorate computes the headers of every representation of c.
func (s *Server) decorate(c *content, immutable, fromStore bool) *file {
	f := &file{content: c, immutable: immutable, fromStore: fromStore, vary: len(c.reps) > 1}
	cache := s.cacheShort
	if immutable {
		cache = cacheImmutable
	}
	lastMod := ""
	if !c.mtime.IsZero() && c.mtime.Unix() > 0 {
		lastMod = c.mtime.UTC().Format(http.TimeFormat)
	}
	f.reps = make([]rep, len(c.reps))
	for i, rc := range c.reps {
		var full, cond [][2]string
		add := func(both bool, k, v string) {
			full = append(full, [2]string{k, v})
			if both {
				cond = append(cond, [2]string{k, v})
			}
		}
		add(false, "Content-Type", c.ctype)
		add(false, "Content-Length", strconv.FormatInt(rc.size, 10))
		if rc.coding != identity {
			add(false, "Content-Encoding", rc.coding.String())
		}
		add(true, "Etag", rc.etag)
		if lastMod != "" {
			add(true, "Last-Modified", lastMod)
		}
		add(true, "Cache-Control", cache)
		if f.vary {
			add(true, "Vary", "Accept-Encoding")
		}
		add(false, "Accept-Ranges", "bytes")
		add(false, "X-Content-Type-Options", "nosniff")
		if s.cfg.CORS != "" {
			add(true, "Access-Control-Allow-Origin", s.cfg.CORS)
		}
		f.reps[i] = rep{repContent: rc, header: toHeader(full), header304: toHeader(cond),
			wire: toWire(full), wire304: toWire(cond)}
	}
	return f
}

func toHeader(kv [][2]string) http.Header {
	h := make(http.Header, len(kv))
	for _, p := range kv {
		h[p[0]] = []string{p[1]}
	}
	return h
}

func toWire(kv [][2]string) []byte {
	var b strings.Builder
	for _, p := range kv {
		b.WriteString(p[0])
		b.WriteString(": ")
		b.WriteString(p[1])
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

// cacheControlFor renders MaxAge: "public, max-age=N", or "no-cache" when
// negative.
func cacheControlFor(maxAge time.Duration) string {
	if maxAge < 0 {
		return "no-cache"
	}
	return "public, max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
}
