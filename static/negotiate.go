package static

import "strings"

// coding is a content coding the server can serve.
type coding uint8

const (
	identity coding = iota
	codingBr
	codingZstd
	codingGzip
	numCodings
)

// codingNames are the Content-Encoding tokens; suffixes the file-name
// suffixes of sibling variants (x.css.br, x.css.zst, x.css.gz).
var (
	codingNames = [numCodings]string{"identity", "br", "zstd", "gzip"}
	suffixes    = [numCodings]string{"", ".br", ".zst", ".gz"}
)

func (c coding) String() string { return codingNames[c] }

// parseCoding maps a Content-Encoding name ("br", "gzip", "zstd") to its coding.
func parseCoding(s string) (coding, bool) {
	for c := codingBr; c < numCodings; c++ {
		if s == codingNames[c] {
			return c, true
		}
	}
	return 0, false
}

// acceptQ is the quality, in thousandths, a request gives each coding.
type acceptQ [numCodings]int16

// parseAcceptEncoding reads an Accept-Encoding header (RFC 9110 §12.5.3)
// without allocating. Each coding gets its own q-value if listed, else the
// q-value of "*" if listed, else 0 — except identity, which stays acceptable
// unless "identity;q=0", or "*;q=0" without an identity entry, excludes it.
// An identity that is acceptable only by default gets the lowest q (0.001):
// it is the fallback, not preferred over a coding the client listed, so
// "zstd;q=0.5" gets zstd. "x-gzip" is gzip. Elements with a malformed q-value are
// ignored, as if absent. An absent header (present=false) asks for identity
// only: a client that sends none may not decode anything else.
func parseAcceptEncoding(h string, present bool) acceptQ {
	var q acceptQ
	if !present {
		q[identity] = 1000
		return q
	}
	var listed [numCodings]bool
	star := int16(-1)
	for h != "" {
		var elem string
		elem, h, _ = strings.Cut(h, ",")
		tok, params, _ := strings.Cut(elem, ";")
		tok = trimOWS(tok)
		if tok == "" {
			continue
		}
		qv, ok := parseQParams(params)
		if !ok {
			continue
		}
		c := coding(255)
		switch {
		case tok == "*":
			star = qv
			continue
		case strings.EqualFold(tok, "br"):
			c = codingBr
		case strings.EqualFold(tok, "gzip"), strings.EqualFold(tok, "x-gzip"):
			c = codingGzip
		case strings.EqualFold(tok, "zstd"):
			c = codingZstd
		case strings.EqualFold(tok, "identity"):
			c = identity
		default:
			continue
		}
		// A coding listed twice keeps its highest q: the most generous
		// reading of an ambiguous header.
		if !listed[c] || qv > q[c] {
			q[c] = qv
		}
		listed[c] = true
	}
	for c := range numCodings {
		if listed[c] {
			continue
		}
		switch {
		case star >= 0:
			q[c] = star
		case c == identity:
			q[c] = 1
		}
	}
	return q
}

// parseQParams finds the q parameter in ";a=b;q=0.5" and returns it in
// thousandths (1000 when absent). ok is false for a malformed q-value.
func parseQParams(params string) (int16, bool) {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(trimOWS(k), "q") {
			continue
		}
		return parseQValue(trimOWS(v))
	}
	return 1000, true
}

// parseQValue parses qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
func parseQValue(s string) (int16, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	whole := int16(s[0] - '0')
	if len(s) == 1 {
		return whole * 1000, true
	}
	if s[1] != '.' {
		return 0, false
	}
	frac, scale := int16(0), int16(100)
	for i := 2; i < len(s); i++ {
		d := s[i]
		if d < '0' || d > '9' || (whole == 1 && d != '0') {
			return 0, false
		}
		frac += int16(d-'0') * scale
		scale /= 10
	}
	return whole*1000 + frac, true
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// etagMatch reports whether an If-None-Match header value matches etag
// (a quoted strong tag) by the weak comparison RFC 9110 §13.1.2 requires:
// "*" matches anything, W/ prefixes are ignored, and the header is a
// comma-separated list. It does not allocate.
func etagMatch(header, etag string) bool {
	for {
		header = trimOWSComma(header)
		if header == "" {
			return false
		}
		if header[0] == '*' {
			return true
		}
		if strings.HasPrefix(header, "W/") {
			header = header[2:]
		}
		if header == "" || header[0] != '"' {
			return false // malformed: stop rather than guess
		}
		end := strings.IndexByte(header[1:], '"')
		if end < 0 {
			return false
		}
		tag := header[:end+2]
		if tag == etag {
			return true
		}
		header = header[end+2:]
	}
}

func trimOWSComma(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == ',') {
		s = s[1:]
	}
	return s
}
