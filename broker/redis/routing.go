package redis

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// Routing as kombu's virtual exchanges do it, over keys in Redis.

// key applies the global key prefix to a key name.
func (b *Broker) key(name string) string { return b.prefix + name }

// queueKey is the list holding queue's messages of the given priority
// (kombu's _q_for_pri).
func queueKey(queue string, priority int) string {
	p := bucket(priority)
	if p == 0 {
		return queue
	}
	return queue + sep + strconv.Itoa(p)
}

// bucket maps a priority to the largest step not above it, after clamping
// to 0..9 as kombu does.
func bucket(p int) int {
	p = min(max(p, 0), 9)
	out := 0
	for _, s := range priorityBuckets {
		if s <= p {
			out = s
		}
	}
	return out
}

// queueOfKey recovers the queue name from a list key (kombu cuts at the
// last separator).
func queueOfKey(key string) string {
	if i := strings.LastIndex(key, sep); i >= 0 {
		return key[:i]
	}
	return key
}

// topicPattern is kombu's TopicExchange.key_to_pattern.
func topicPattern(key string) string {
	words := strings.Split(escapeRegex(key), ".")
	for i, w := range words {
		switch w {
		case "*":
			words[i] = `.*?[^\.]`
		case "#":
			words[i] = `.*?`
		}
	}
	return "^" + strings.Join(words, `\.`) + "$"
}

// escapeRegex is kombu.utils.text.escape_regex(p, '.#*'): every character
// that is not alphanumeric or one of those is backslash-escaped.
func escapeRegex(p string) string {
	var sb strings.Builder
	for _, r := range p {
		if r < 128 && !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '#' || r == '*') {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

var (
	reMu    sync.Mutex
	reCache = map[string]*regexp.Regexp{}
)

func matchPattern(pattern, key string) bool {
	reMu.Lock()
	re, ok := reCache[pattern]
	if !ok {
		re, _ = regexp.Compile(pattern)
		if len(reCache) < 1024 {
			reCache[pattern] = re
		}
	}
	reMu.Unlock()
	return re != nil && re.MatchString(key)
}

// lookup finds the queues a message to exchange/routingKey goes to, as
// kombu's _lookup does: the anon exchange names the queue; otherwise the
// binding set decides, by exact key (direct) or pattern (topic). No match
// means the message is dropped, as in kombu.
func (b *Broker) lookup(ctx context.Context, c goredis.Cmdable, exchange, routingKey string) ([]string, error) {
	if exchange == "" {
		return []string{routingKey}, nil
	}
	members, err := c.SMembers(ctx, b.key(bindingPrefix+exchange)).Result()
	if err != nil {
		return nil, err
	}
	kind := b.kind(exchange)
	seen := map[string]bool{}
	var out []string
	for _, m := range members {
		parts := strings.Split(m, sep)
		if len(parts) != 3 {
			continue
		}
		rk, pattern, queue := parts[0], parts[1], parts[2]
		var ok bool
		switch {
		case kind == "fanout":
			ok = true
		case kind == "topic" || pattern != "":
			ok = pattern != "" && matchPattern(pattern, routingKey)
		default:
			ok = rk == routingKey
		}
		if ok && !seen[queue] {
			seen[queue] = true
			out = append(out, queue)
		}
	}
	return out, nil
}

// fanoutChannel is kombu's _get_publish_topic with fanout_prefix and
// fanout_patterns on (their defaults).
func (b *Broker) fanoutChannel(exchange, routingKey string) string {
	if routingKey != "" {
		return b.prefix + b.fanoutPfx + exchange + "/" + routingKey
	}
	return b.prefix + b.fanoutPfx + exchange
}
