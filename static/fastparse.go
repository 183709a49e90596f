package static

import "bytes"

// fastReq is a request the fast path may answer itself: GET or HEAD of a
// plain path, with nothing in it that changes the semantics beyond content
// negotiation and If-None-Match/If-Modified-Since. Its fields alias the
// connection buffer.
type fastReq struct {
	head      bool
	http10    bool
	path      []byte
	ae        []byte
	aePresent bool
	inm       []byte
	hasINM    bool
	ims       []byte
	hasIMS    bool
	close     bool // respond with Connection: close and close
	keepAlive bool // HTTP/1.0 with Connection: keep-alive
}

type parseStatus uint8

const (
	parseOK      parseStatus = iota
	parseMore                // incomplete: read more
	parseHandoff             // anything else: let net/http decide
)

// parseFastRequest parses one request from the start of b. It accepts only
// what it fully understands and returns parseHandoff for everything else
// (other methods, percent-encoding, bodies, Range and the other
// preconditions, obsolete line folding, bare LF line ends, absolute-form
// targets, duplicate or missing Host…): net/http then parses the same
// bytes and gives the reference answer. It never allocates.
func parseFastRequest(b []byte) (req fastReq, consumed int, st parseStatus) {
	line, rest, ok := cutLine(b)
	if !ok {
		return req, 0, moreOrHandoff(b)
	}
	if line == nil {
		return req, 0, parseHandoff
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		return req, 0, parseHandoff
	}
	method, rl := line[:sp1], line[sp1+1:]
	sp2 := bytes.IndexByte(rl, ' ')
	if sp2 < 0 {
		return req, 0, parseHandoff
	}
	target, version := rl[:sp2], rl[sp2+1:]
	switch string(method) {
	case "GET":
	case "HEAD":
		req.head = true
	default:
		return req, 0, parseHandoff
	}
	switch string(version) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		req.http10 = true
	default:
		return req, 0, parseHandoff
	}
	if len(target) == 0 || target[0] != '/' {
		return req, 0, parseHandoff
	}
	for i, c := range target {
		if c <= ' ' || c >= 0x7f || c == '%' || c == '#' {
			return req, 0, parseHandoff
		}
		if c == '?' {
			target = target[:i]
			break
		}
	}
	req.path = target

	hosts := 0
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return req, 0, moreOrHandoff(b)
		}
		if line == nil {
			return req, 0, parseHandoff
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return req, 0, parseHandoff // includes obs-fold lines starting with SP
		}
		name, value := line[:colon], trimOWSBytes(line[colon+1:])
		for _, c := range name {
			if !isTokenChar(c) {
				return req, 0, parseHandoff
			}
		}
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return req, 0, parseHandoff
			}
		}
		switch {
		case eqFold(name, "host"):
			hosts++
			for _, c := range value {
				if !isHostChar(c) {
					return req, 0, parseHandoff
				}
			}
		case eqFold(name, "accept-encoding"):
			if req.aePresent {
				return req, 0, parseHandoff
			}
			req.ae, req.aePresent = value, true
		case eqFold(name, "if-none-match"):
			if req.hasINM {
				return req, 0, parseHandoff
			}
			req.inm, req.hasINM = value, true
		case eqFold(name, "if-modified-since"):
			if req.hasIMS {
				return req, 0, parseHandoff
			}
			req.ims, req.hasIMS = value, true
		case eqFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte{','}) {
				tok = trimOWSBytes(tok)
				switch {
				case len(tok) == 0:
				case eqFold(tok, "close"):
					req.close = true
				case eqFold(tok, "keep-alive"):
					req.keepAlive = true
				default:
					return req, 0, parseHandoff // upgrade, hop-by-hop lists…
				}
			}
		case eqFold(name, "content-length"):
			if string(value) != "0" {
				return req, 0, parseHandoff
			}
		case eqFold(name, "transfer-encoding"), eqFold(name, "expect"), eqFold(name, "upgrade"),
			eqFold(name, "range"), eqFold(name, "if-range"), eqFold(name, "if-match"),
			eqFold(name, "if-unmodified-since"), eqFold(name, "http2-settings"):
			return req, 0, parseHandoff
		}
	}
	if (hosts != 1 && !req.http10) || hosts > 1 {
		return req, 0, parseHandoff
	}
	if req.http10 && !req.keepAlive {
		req.close = true
	}
	return req, len(b) - len(rest), parseOK
}

// cutLine returns the first CRLF-terminated line of b (without the CRLF)
// and the rest. ok is false when no full line is there yet; line is nil
// (with ok true) for a bare LF, which only net/http tolerates.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b, false
	}
	if i == 0 || b[i-1] != '\r' {
		return nil, nil, true
	}
	return b[: i-1 : i-1], b[i+1:], true
}

// moreOrHandoff: an incomplete request waits for more bytes, unless what is
// there already cannot be a request the fast path takes.
func moreOrHandoff(b []byte) parseStatus {
	for _, m := range [...]string{"GET ", "HEAD "} {
		n := min(len(b), len(m))
		if string(b[:n]) == m[:n] {
			return parseMore
		}
	}
	return parseHandoff
}

func trimOWSBytes(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// eqFold compares b to a lower-case ASCII name, ignoring case.
func eqFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isHostChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '.', '-', ':', '[', ']', '_':
		return true
	}
	return false
}
