package redisurl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Kind is the Redis deployment a URL names.
type Kind int

// The deployments a URL can name.
const (
	Standalone Kind = iota // one server over TCP or a Unix socket
	Sentinel               // a master found through Redis Sentinel
	Cluster                // a Redis Cluster
)

func (k Kind) String() string {
	switch k {
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	}
	return "standalone"
}

// Options are settings that Celery keeps outside the URL.
type Options struct {
	// MasterName is the Sentinel master name (Celery's
	// result_backend_transport_options["master_name"]). It may also be given
	// as ?master_name= in the URL; giving two different names is an error.
	MasterName string
	// ClientName is sent with CLIENT SETNAME on every connection, unless the
	// URL has ?client_name=.
	ClientName string
}

// Config is a parsed URL: which deployment it names and the go-redis
// options that reach it.
type Config struct {
	Kind      Kind
	Universal goredis.UniversalOptions
}

// NewClient returns a client for the parsed URL. go-redis picks the client
// type from the options: MasterName → failover client, IsClusterMode →
// cluster client, otherwise a single-server client.
func (c *Config) NewClient() goredis.UniversalClient {
	o := c.Universal
	return goredis.NewUniversalClient(&o)
}

// NewClient parses rawURL and returns a client for it.
func NewClient(rawURL string, opts Options) (goredis.UniversalClient, error) {
	c, err := Parse(rawURL, opts)
	if err != nil {
		return nil, err
	}
	return c.NewClient(), nil
}

// ErrBadURL is wrapped by every parse error.
var ErrBadURL = errors.New("redisurl: bad Redis URL")

// Error says which part of a URL is wrong. URL has its passwords hidden.
type Error struct {
	URL  string
	Part string
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("redisurl: %s in %q: %v", e.Part, e.URL, e.Err)
}

// Unwrap lets errors.Is match both ErrBadURL and the cause.
func (e *Error) Unwrap() []error { return []error{ErrBadURL, e.Err} }

// Default ports.
const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
)

// parser carries what is collected across the ';'-separated parts.
type parser struct {
	red  string // redacted URL for messages
	opts Options
	out  Config
	db   *int
	tls  tlsParams
	// masterName from the URL, sentinelPassword from ?sentinel_password=.
	masterName string
}

func (p *parser) fail(part, format string, args ...any) error {
	return &Error{URL: p.red, Part: part, Err: fmt.Errorf(format, args...)}
}

// Parse reads a Celery/kombu Redis URL (see the package documentation for
// the forms). Errors are *Error values naming the bad part.
func Parse(rawURL string, opts Options) (*Config, error) {
	p := &parser{red: Redact(rawURL), opts: opts}
	if err := p.parse(strings.TrimSpace(rawURL)); err != nil {
		return nil, err
	}
	return &p.out, nil
}

func (p *parser) parse(raw string) error {
	if raw == "" {
		return p.fail("URL", "empty")
	}
	var chunks []string
	for c := range strings.SplitSeq(raw, ";") {
		if c = strings.TrimSpace(c); c != "" {
			chunks = append(chunks, c)
		}
	}
	if len(chunks) == 0 {
		return p.fail("URL", "no server in it")
	}
	i := strings.Index(chunks[0], "://")
	if i <= 0 {
		return p.fail("scheme", "missing; expected redis://, rediss://, unix://, sentinel:// or redis+cluster://")
	}
	scheme := strings.ToLower(chunks[0][:i])
	o := &p.out.Universal
	o.ClientName = clientName(p.opts.ClientName)
	switch scheme {
	case "redis", "rediss":
		if len(chunks) > 1 {
			return p.fail("URL", "several ';'-separated servers are only meaningful for sentinel:// and redis+cluster://")
		}
		if err := p.server(chunks[0], scheme, defaultPort, true); err != nil {
			return err
		}
		return p.finishTLS(scheme == "rediss", scheme)
	case "unix", "socket", "redis+socket":
		if len(chunks) > 1 {
			return p.fail("URL", "a Unix socket URL names one server")
		}
		return p.socket(chunks[0], scheme)
	case "sentinel":
		return p.sentinel(chunks)
	case "redis+cluster", "rediss+cluster":
		return p.cluster(chunks, scheme)
	}
	return p.fail("scheme", "%q is not a Redis scheme (use redis, rediss, unix, sentinel or redis+cluster)", scheme)
}

// parseChunk parses one part, adding the scheme when a sentinel or cluster
// list gives bare host:port parts after the first.
func (p *parser) parseChunk(chunk, scheme string) (*url.URL, error) {
	if !strings.Contains(chunk, "://") {
		chunk = scheme + "://" + chunk
	}
	u, err := url.Parse(chunk)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, p.fail("URL", "%v", err)
	}
	if s := strings.ToLower(u.Scheme); s != scheme {
		return nil, p.fail("scheme", "%q mixed with %q in one URL list", s, scheme)
	}
	if u.Fragment != "" {
		return nil, p.fail("URL", "unexpected fragment %q", u.Fragment)
	}
	return u, nil
}

// hostPort validates host[:port] and applies the default port.
func (p *parser) hostPort(hostport, defPort string) (string, error) {
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", p.fail("host", "%q: unclosed '['", hostport)
		}
		host = hostport[1:end]
		if rest := hostport[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "", p.fail("host", "%q: unexpected %q after ']'", hostport, rest)
			}
			port = rest[1:]
		}
	} else if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		host, port = hostport[:i], hostport[i+1:]
		if strings.Contains(host, ":") {
			return "", p.fail("host", "%q: write IPv6 addresses in brackets, [::1]:6379", hostport)
		}
	}
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = defPort
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", p.fail("port", "%q is not a port number (1-65535)", port)
	}
	if strings.ContainsAny(host, " /?#@,[]") {
		return "", p.fail("host", "%q is not a host name", host)
	}
	return net.JoinHostPort(host, port), nil
}

// user applies the user info of u (kombu: redis://user:password@host).
func (p *parser) user(u *url.URL) {
	if u.User == nil {
		return
	}
	o := &p.out.Universal
	if name := u.User.Username(); name != "" {
		o.Username = name
	}
	if pw, ok := u.User.Password(); ok {
		o.Password = pw
	}
}

// dbFromPath reads "/N" (kombu also accepts an empty path).
func (p *parser) dbFromPath(path string) error {
	path = strings.Trim(path, "/")
	if path == "" {
		return nil
	}
	n, err := strconv.Atoi(path)
	if err != nil || n < 0 {
		return p.fail("database", "path %q is not a database number", "/"+path)
	}
	p.db = &n
	return nil
}

// server parses redis://, rediss:// and one part of a cluster list.
func (p *parser) server(chunk, scheme, defPort string, withDB bool) error {
	u, err := p.parseChunk(chunk, scheme)
	if err != nil {
		return err
	}
	if u.Opaque != "" {
		return p.fail("URL", "expected %s://host, got %q", scheme, chunk)
	}
	p.user(u)
	addr, err := p.hostPort(u.Host, defPort)
	if err != nil {
		return err
	}
	p.out.Universal.Addrs = append(p.out.Universal.Addrs, addr)
	if withDB {
		if err := p.dbFromPath(u.Path); err != nil {
			return err
		}
	} else if strings.Trim(u.Path, "/") != "" && strings.Trim(u.Path, "/") != "0" {
		return p.fail("database", "Redis Cluster has only database 0, got %q", u.Path)
	}
	if err := p.query(u.Query(), scheme); err != nil {
		return err
	}
	if p.db != nil {
		p.out.Universal.DB = *p.db
	}
	return nil
}

func (p *parser) socket(chunk, scheme string) error {
	u, err := p.parseChunk(chunk, scheme)
	if err != nil {
		return err
	}
	path := u.Path
	if u.Opaque != "" {
		path = u.Opaque // unix:relative.sock
	}
	if u.Host != "" {
		// unix://host/path would silently drop the host; kombu expects
		// three slashes.
		return p.fail("socket path", "write %s:///absolute/path.sock (three slashes), got host %q", scheme, u.Host)
	}
	if path == "" || path == "/" {
		return p.fail("socket path", "missing")
	}
	p.user(u)
	if err := p.query(u.Query(), scheme); err != nil {
		return err
	}
	o := &p.out.Universal
	o.Addrs = []string{path}
	if p.db != nil {
		o.DB = *p.db
	}
	o.Dialer = func(ctx context.Context, _, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", addr)
	}
	return p.finishTLS(false, scheme)
}

func (p *parser) sentinel(chunks []string) error {
	o := &p.out.Universal
	p.out.Kind = Sentinel
	for i, c := range chunks {
		u, err := p.parseChunk(c, "sentinel")
		if err != nil {
			return err
		}
		addr, err := p.hostPort(u.Host, defaultSentinelPort)
		if err != nil {
			return err
		}
		o.Addrs = append(o.Addrs, addr)
		// Celery takes the master's password and db from the first part.
		if i == 0 {
			p.user(u)
			if err := p.dbFromPath(u.Path); err != nil {
				return err
			}
		}
		if err := p.query(u.Query(), "sentinel"); err != nil {
			return err
		}
	}
	if p.db != nil {
		o.DB = *p.db
	}
	switch {
	case p.opts.MasterName != "" && p.masterName != "" && p.opts.MasterName != p.masterName:
		return p.fail("master_name", "URL says %q but the option says %q", p.masterName, p.opts.MasterName)
	case p.opts.MasterName != "":
		o.MasterName = p.opts.MasterName
	case p.masterName != "":
		o.MasterName = p.masterName
	default:
		return p.fail("master_name", "missing: add ?master_name=NAME (Celery's transport option master_name)")
	}
	return p.finishTLS(false, "sentinel")
}

func (p *parser) cluster(chunks []string, scheme string) error {
	p.out.Kind = Cluster
	p.out.Universal.IsClusterMode = true
	for _, c := range chunks {
		u, err := p.parseChunk(c, scheme)
		if err != nil {
			return err
		}
		hosts := strings.Split(u.Host, ",")
		for j, h := range hosts {
			if h == "" {
				return p.fail("host", "empty seed in %q", u.Host)
			}
			uu := *u
			uu.Host = h
			if j > 0 {
				uu.User = nil
			}
			if err := p.server(uu.String(), scheme, defaultPort, false); err != nil {
				return err
			}
		}
	}
	return p.finishTLS(scheme == "rediss+cluster", scheme)
}

// Query parameters go-redis has no use for, accepted so Celery URLs work.
var ignoredParams = map[string]bool{
	"health_check_interval": true, "retry_on_timeout": true, "socket_keepalive": true,
	"socket_keepalive_options": true, "retry_on_error": true, "encoding": true,
	"encoding_errors": true, "decode_responses": true,
}

func (p *parser) query(q url.Values, scheme string) error {
	o := &p.out.Universal
	for key, vals := range q {
		if len(vals) > 1 {
			return p.fail("parameter "+key, "given %d times", len(vals))
		}
		v := vals[0]
		switch key {
		case "db":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return p.fail("parameter db", "%q is not a database number", v)
			}
			if p.out.Kind == Cluster && n != 0 {
				return p.fail("parameter db", "Redis Cluster has only database 0")
			}
			p.db = &n
		case "virtual_host":
			// kombu's socket URLs carry the db here; on TCP URLs Celery's
			// backend ignores it in favour of the path.
			if scheme == "unix" || scheme == "socket" || scheme == "redis+socket" {
				n, err := strconv.Atoi(strings.Trim(v, "/"))
				if err != nil || n < 0 {
					return p.fail("parameter virtual_host", "%q is not a database number", v)
				}
				p.db = &n
			}
		case "password":
			o.Password = v
		case "username":
			o.Username = v
		case "master_name":
			if scheme != "sentinel" {
				return p.fail("parameter master_name", "only meaningful for sentinel:// URLs")
			}
			if p.masterName != "" && p.masterName != v {
				return p.fail("parameter master_name", "given as %q and %q", p.masterName, v)
			}
			p.masterName = v
		case "sentinel_password":
			if scheme != "sentinel" {
				return p.fail("parameter sentinel_password", "only meaningful for sentinel:// URLs")
			}
			o.SentinelPassword = v
		case "sentinel_username":
			if scheme != "sentinel" {
				return p.fail("parameter sentinel_username", "only meaningful for sentinel:// URLs")
			}
			o.SentinelUsername = v
		case "socket_timeout":
			d, err := p.seconds(key, v)
			if err != nil {
				return err
			}
			o.ReadTimeout, o.WriteTimeout = d, d
		case "socket_connect_timeout":
			d, err := p.seconds(key, v)
			if err != nil {
				return err
			}
			o.DialTimeout = d
		case "max_connections":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return p.fail("parameter max_connections", "%q is not a positive integer", v)
			}
			o.PoolSize = n
		case "client_name":
			o.ClientName = v
		case "protocol":
			if v != "2" && v != "3" {
				return p.fail("parameter protocol", "%q: use 2 or 3", v)
			}
			o.Protocol, _ = strconv.Atoi(v)
		case "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname":
			if err := p.tls.set(key, v); err != nil {
				return p.fail("parameter "+key, "%v", err)
			}
		default:
			if !ignoredParams[key] {
				return p.fail("parameter "+key, "unknown")
			}
		}
	}
	return nil
}

func (p *parser) seconds(key, v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > 1e6 {
		return 0, p.fail("parameter "+key, "%q is not a positive number of seconds", v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// Redact hides the passwords of every ';'-separated part of a URL, and
// password= query values, for logs and error messages.
func Redact(raw string) string {
	parts := strings.Split(raw, ";")
	for i, part := range parts {
		parts[i] = redactOne(part)
	}
	return strings.Join(parts, ";")
}

func redactOne(s string) string {
	rest := s
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	start := len(s) - len(rest)
	end := len(rest)
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		end = i
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		if colon := strings.Index(rest[:at], ":"); colon >= 0 {
			s = s[:start+colon+1] + "xxxxx" + s[start+at:]
		}
	}
	for _, key := range []string{"password=", "sentinel_password="} {
		if i := strings.Index(s, key); i >= 0 && (i == 0 || s[i-1] == '?' || s[i-1] == '&') {
			j := i + len(key)
			k := strings.IndexByte(s[j:], '&')
			if k < 0 {
				k = len(s) - j
			}
			s = s[:j] + "xxxxx" + s[j+k:]
		}
	}
	return s
}

// clientName makes a name CLIENT SETNAME accepts: it refuses spaces and
// anything outside printable ASCII.
func clientName(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, s)
}
