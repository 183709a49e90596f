// Package static serves a Django project's collected static files
// (STATIC_ROOT) the way a CDN wants them: precompressed, with exact caching
// headers, and without 404s during rolling deploys.
//
// At start-up the root is scanned once into an index: every file's size,
// SHA-256-based ETag and its .br, .zst and .gz variants. Variants that are
// missing are created in parallel (Brotli 11, zstd, gzip 9; not for images,
// fonts, archives or media, nor when they save less than 5 %) and written
// next to the originals with the original's mtime, or kept in memory when
// the root is read-only. Changes on disk are picked up by inotify (or
// polling); only changed files are read again.
//
// Per request, the representation is chosen by Accept-Encoding with
// q-values honoured (q=0 excludes; highest q wins, then the smallest); each
// representation has its own ETag and exact Content-Length, and Vary:
// Accept-Encoding is sent whenever variants exist. Range requests get the
// identity bytes (206, multipart ranges, If-Range through
// http.ServeContent). If-None-Match (weak comparison, lists) and
// If-Modified-Since give 304; If-Match and If-Unmodified-Since give 412.
// Only GET and HEAD are served (405 with Allow otherwise).
//
// Names that are values in Django's staticfiles.json (ManifestStaticFilesStorage)
// are hashed and get "Cache-Control: public, max-age=31536000, immutable";
// other files get a short max-age (Config.MaxAge); every error, including
// the 404 for an unknown hashed name, is "Cache-Control: no-store", so a CDN
// never keeps a miss.
//
// Rolling deploys: the hashed files of the last KeepManifests manifests are
// copied into a content-addressed store (Config.Store), so after
// collectstatic --clear, or a new image, pages rendered by the previous
// release still find their CSS and JS. Instances may share the store; an
// instance that misses a hashed name re-reads it (at most once a second),
// so an old instance also serves the new release's assets.
//
// Paths are resolved by exact lookup in the index, never by joining the
// request onto the root, and files are opened through os.Root: no request
// reaches outside the root. Encoded slashes, backslashes, NUL, dot segments
// and invalid UTF-8 are refused with 400; hidden files and symlinks leading
// out of the root are not served.
//
// With Config.Listen set, Start runs a listener whose connections are read
// by a small allocation-free HTTP/1.1 loop that answers plain GET/HEAD
// requests from precomputed header bytes (bodies from memory with writev,
// or from disk with sendfile). The first request it does not fully
// understand hands the connection, with the bytes already read, to
// net/http running the same handler, which stays the reference behaviour.
// As an http.Handler the Server works in any mux, without the fast path.
//
// Usage:
//
//	s, err := static.New(ctx, static.Config{
//		Root:     "/srv/app/staticfiles",
//		Listen:   "127.0.0.1:8080",
//		Prefix:   "/static/",
//		MaxAge:   5 * time.Minute,
//	})
//	if err != nil {
//		return err
//	}
//	if err := s.Start(ctx); err != nil {
//		return err
//	}
//	<-ctx.Done()
//	return s.Shutdown(context.WithoutCancel(ctx))
package static
