package static

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
)

var (
	allowGetHead = []string{"GET, HEAD"}
	noStore      = []string{cacheNoStore}
	textPlain    = []string{"text/plain; charset=utf-8"}
	nosniff      = []string{"nosniff"}
)

// ServeHTTP serves GET and HEAD for files in the index.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, true)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, retry bool) {
	status, rp := s.serve1(w, r, retry)
	if s.cfg.AccessLog != nil && status != 0 {
		s.logAccess(r.Method, r.URL.Path, status, rp, r.Header.Get("Accept-Encoding"))
	}
}

// logAccess writes one access-log record.
func (s *Server) logAccess(method, path string, status int, rp *rep, ae string) {
	enc, size, cache := "", int64(0), cacheNoStore
	if rp != nil {
		enc, size, cache = rp.coding.String(), rp.size, rp.header.Get("Cache-Control")
		if status == http.StatusNotModified || method == http.MethodHead {
			size = 0
		}
	}
	s.cfg.AccessLog.Info("request", "method", method, "path", path, "status", status,
		"encoding", enc, "bytes", size, "cache_control", cache, "accept_encoding", ae)
}

// serve1 answers the request and returns the status and representation
// sent, for the access log (status 0: a retry already logged it).
func (s *Server) serve1(w http.ResponseWriter, r *http.Request, retry bool) (int, *rep) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = allowGetHead
		s.fail(w, http.StatusMethodNotAllowed)
		return http.StatusMethodNotAllowed, nil
	}
	name, dir, verdict := resolvePath(s.cfg.Prefix, r.URL.Path, r.URL.EscapedPath())
	switch verdict {
	case pathBad:
		s.fail(w, http.StatusBadRequest)
		return http.StatusBadRequest, nil
	case pathNotFound:
		s.fail(w, http.StatusNotFound)
		return http.StatusNotFound, nil
	}
	f, redirect := s.lookup(name, dir)
	if f == nil && !redirect && !dir && looksHashed(name) && s.storeMayHave(r.Context()) {
		f, redirect = s.lookup(name, dir)
	}
	if redirect {
		// Relative, so it stays right behind a proxy that rewrites the prefix.
		loc := path.Base(name) + "/"
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		h := w.Header()
		h["Location"] = []string{loc}
		h["Cache-Control"] = []string{s.cacheShort}
		w.WriteHeader(http.StatusMovedPermanently)
		return http.StatusMovedPermanently, nil
	}
	if f == nil {
		s.fail(w, http.StatusNotFound)
		return http.StatusNotFound, nil
	}

	h := r.Header
	// Only byte ranges are ranges; any other unit is ignored (RFC 9110 §14.2).
	rg, hasRange := h["Range"]
	hasRange = hasRange && r.Method == http.MethodGet && len(rg) > 0 && len(rg[0]) >= 6 && strings.EqualFold(rg[0][:6], "bytes=")
	ae, aePresent := h["Accept-Encoding"]
	rp := f.choose(joinHeader(ae), aePresent, hasRange)
	if rp == nil {
		if f.vary {
			w.Header()["Vary"] = []string{"Accept-Encoding"}
		}
		s.fail(w, http.StatusNotAcceptable)
		return http.StatusNotAcceptable, nil
	}
	hasRange = hasRange && rp.coding == identity

	switch evalPreconditions(r, rp.etag, f.mtime) {
	case http.StatusPreconditionFailed:
		s.fail(w, http.StatusPreconditionFailed)
		return http.StatusPreconditionFailed, nil
	case http.StatusNotModified:
		copyHeader(w.Header(), rp.header304)
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified, rp
	}

	copyHeader(w.Header(), rp.header)
	body, err := s.open(rp)
	if err != nil {
		clear(w.Header())
		if retry && err == errChanged {
			// The file changed under the index: rescan, then answer from
			// the new index.
			if _, rerr := s.build(r.Context(), false); rerr == nil {
				s.serve(w, r, false)
				return 0, nil
			}
		}
		s.log.Warn("static: cannot open file", "file", f.name, "err", err)
		w.Header()["Retry-After"] = []string{"1"}
		s.fail(w, http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable, nil
	}
	defer body.Close()
	if hasRange {
		// http.ServeContent does Range, If-Range and multipart ranges; it
		// computes Content-Length itself.
		delete(w.Header(), "Content-Length")
		rw := &rangeWriter{ResponseWriter: w}
		http.ServeContent(rw, r, "", f.mtime, body)
		return rw.status, rp
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		// For a file this is io.Copy to the connection: sendfile.
		_, _ = io.Copy(w, body)
	}
	return http.StatusOK, rp
}

// lookup finds a file, or reports that the name is a directory with an
// index file and wants a trailing slash.
func (s *Server) lookup(name string, dir bool) (f *file, redirect bool) {
	idx := s.idx.Load()
	if dir {
		if s.cfg.IndexFile == "" {
			return nil, false
		}
		if name == "" {
			return idx.files[s.cfg.IndexFile], false
		}
		return idx.files[name+"/"+s.cfg.IndexFile], false
	}
	if f := idx.files[name]; f != nil {
		return f, false
	}
	if s.cfg.IndexFile != "" && name != "" && idx.files[name+"/"+s.cfg.IndexFile] != nil {
		return nil, true
	}
	return nil, false
}

// choose picks the representation to send: among those the client accepts
// (q > 0), the highest q, then the smallest. A Range request gets identity,
// so that byte offsets mean the same thing to every client. nil means the
// client refused every representation (406).
func (f *file) choose(ae string, aePresent, hasRange bool) *rep {
	q := parseAcceptEncoding(ae, aePresent)
	if hasRange && q[identity] > 0 {
		return &f.reps[0]
	}
	var best *rep
	var bestQ int16
	for i := range f.reps {
		r := &f.reps[i]
		qv := q[r.coding]
		if qv <= 0 {
			continue
		}
		if best == nil || qv > bestQ || (qv == bestQ && r.size < best.size) {
			best, bestQ = r, qv
		}
	}
	return best
}

func joinHeader(vs []string) string {
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return vs[0]
	}
	out := vs[0]
	for _, v := range vs[1:] {
		out += "," + v
	}
	return out
}

// evalPreconditions applies RFC 9110 §13.2.2 in its order: If-Match, else
// If-Unmodified-Since (412); If-None-Match, else If-Modified-Since (304).
// It returns 0 to go on. If-Range is left to http.ServeContent.
func evalPreconditions(r *http.Request, etag string, mtime time.Time) int {
	h := r.Header
	if im, ok := h["If-Match"]; ok {
		if !strongMatch(joinHeader(im), etag) {
			return http.StatusPreconditionFailed
		}
	} else if ius, ok := h["If-Unmodified-Since"]; ok && !mtime.IsZero() {
		if t, err := http.ParseTime(ius[0]); err == nil && mtime.Truncate(time.Second).After(t) {
			return http.StatusPreconditionFailed
		}
	}
	inm, hasINM := h["If-None-Match"]
	ims, hasIMS := h["If-Modified-Since"]
	if hasIMS && len(ims) > 0 && notModified(joinHeader(inm), hasINM, ims[0], true, etag, mtime) ||
		!hasIMS && notModified(joinHeader(inm), hasINM, "", false, etag, mtime) {
		return http.StatusNotModified
	}
	return 0
}

// notModified decides a conditional GET: If-None-Match when present (weak
// comparison, lists, "*"), else If-Modified-Since against the mtime at
// one-second resolution. Shared by both serving paths.
func notModified(inm string, hasINM bool, ims string, hasIMS bool, etag string, mtime time.Time) bool {
	if hasINM {
		return etagMatch(inm, etag)
	}
	if hasIMS && !mtime.IsZero() {
		t, err := http.ParseTime(ims)
		return err == nil && !mtime.Truncate(time.Second).After(t)
	}
	return false
}

// strongMatch is If-Match's strong comparison: a W/ tag never matches.
func strongMatch(header, etag string) bool {
	for {
		header = trimOWSComma(header)
		if header == "" {
			return false
		}
		if header[0] == '*' {
			return true
		}
		if header[0] != '"' {
			return false
		}
		end := -1
		for i := 1; i < len(header); i++ {
			if header[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 {
			return false
		}
		if header[:end+1] == etag {
			return true
		}
		header = header[end+1:]
	}
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}

// fail writes an error status with a short text body that no cache keeps.
func (s *Server) fail(w http.ResponseWriter, code int) {
	h := w.Header()
	h["Cache-Control"] = noStore
	h["Content-Type"] = textPlain
	h["X-Content-Type-Options"] = nosniff
	if s.cfg.CORS != "" {
		h["Access-Control-Allow-Origin"] = []string{s.cfg.CORS}
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, http.StatusText(code)+"\n")
}

// body is a representation's bytes: a reader over memory or an open file.
type body interface {
	io.ReadSeeker
	io.Closer
}

type memBody struct{ *bytes.Reader }

func (memBody) Close() error { return nil }

var errChanged = errorString("static: file changed on disk")

type errorString string

func (e errorString) Error() string { return string(e) }

// open returns the bytes of rp, checking that a file on disk is still the
// one the index describes (same size and mtime): a changed file must not go
// out under the old ETag and Content-Length.
func (s *Server) open(rp *rep) (body, error) {
	if rp.data != nil {
		return memBody{bytes.NewReader(rp.data)}, nil
	}
	f, err := os.OpenInRoot(rp.base, rp.rel)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() != rp.size || (!rp.mtime.IsZero() && !fi.ModTime().Equal(rp.mtime)) {
		f.Close()
		return nil, errChanged
	}
	return f, nil
}

// rangeWriter keeps error answers from http.ServeContent (416) out of
// caches, and passes ReadFrom through so the body still goes by sendfile.
type rangeWriter struct {
	http.ResponseWriter
	status int
}

func (w *rangeWriter) WriteHeader(code int) {
	w.status = code
	if code >= 400 {
		w.Header()["Cache-Control"] = noStore
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *rangeWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
}
