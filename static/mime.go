package static

import (
	"mime"
	"path"
	"strings"
)

// webTypes fixes the media types of web assets so that responses do not
// depend on the host's /etc/mime.types (which differs between distributions
// and changes .js between application/javascript and text/javascript).
// JavaScript is text/javascript per RFC 9239.
var webTypes = map[string]string{
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".cjs":         "text/javascript; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".xml":         "application/xml",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".apng":        "image/apng",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/vnd.microsoft.icon",
	".bmp":         "image/bmp",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".eot":         "application/vnd.ms-fontobject",
	".wasm":        "application/wasm",
	".pdf":         "application/pdf",
	".mp4":         "video/mp4",
	".webm":        "video/webm",
	".ogv":         "video/ogg",
	".mp3":         "audio/mpeg",
	".ogg":         "audio/ogg",
	".oga":         "audio/ogg",
	".wav":         "audio/wav",
	".zip":         "application/zip",
	".gz":          "application/gzip",
	".br":          "application/octet-stream",
	".zst":         "application/zstd",
	".tar":         "application/x-tar",
}

// contentType returns the Content-Type for a file name: the table above,
// then the system table, then application/octet-stream. Text types without
// a charset get "; charset=utf-8", as Django's and WhiteNoise's do.
func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := webTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		if strings.HasPrefix(t, "text/") && !strings.Contains(t, "charset") {
			t += "; charset=utf-8"
		}
		return t
	}
	return "application/octet-stream"
}

// compressible reports whether a content type is worth compressing. Images
// other than SVG/ICO/BMP, fonts in WOFF/WOFF2, audio, video and archives are
// already compressed, and compressing them again only costs start-up time.
func compressible(ctype string) bool {
	t, _, _ := strings.Cut(ctype, ";")
	switch {
	case strings.HasPrefix(t, "text/"):
		return true
	case strings.HasSuffix(t, "+json"), strings.HasSuffix(t, "+xml"):
		return true
	}
	switch t {
	case "application/json", "application/xml", "application/wasm",
		"application/javascript", "application/x-javascript",
		"application/vnd.ms-fontobject", "font/ttf", "font/otf",
		"image/vnd.microsoft.icon", "image/x-icon", "image/bmp",
		"application/x-tar":
		return true
	}
	return false
}
