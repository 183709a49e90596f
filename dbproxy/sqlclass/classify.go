package sqlclass

import "strings"

// Hint is the comment text that forces a statement to the primary.
const Hint = "dbproxy:primary"

// LSNHint starts a comment hint carrying a read-your-writes token, a WAL
// position such as /* dbproxy:lsn=0/16B3748 */: the statement may only read
// from a replica that has replayed that far.
const LSNHint = "dbproxy:lsn="

// Result is what Classify found in a SQL string.
type Result struct {
	// Primary is true when any statement must run on the primary: a write,
	// DDL, a locking read, SELECT INTO, a data-modifying CTE, a transaction
	// start that is not READ ONLY, anything unrecognised, or a hint.
	Primary bool
	// Hinted is true when a comment carried the dbproxy:primary hint.
	Hinted bool
	// Begin is true when a statement starts a transaction block.
	Begin bool
	// Functions lists the names (lower case, without schema) of everything
	// called like a function, so the caller can look up volatility. Names
	// that are not functions (IN, VALUES, …) are harmless: they are not in
	// pg_proc.
	Functions []string
	// Tables lists the relations named after FROM, JOIN, UPDATE, INTO,
	// TABLE and TRUNCATE (lower case, without schema), for the query cache.
	Tables []string
	// Statements counts the non-empty statements.
	Statements int
	// LSN is the token of a dbproxy:lsn= hint, unparsed ("" without one).
	LSN string
}

// tok is one lexical token: a lower-cased word, a quoted identifier, or a
// single punctuation byte.
type tok struct {
	word  string
	punct byte
}

// Classify classifies sql, which may hold several statements.
func Classify(sql string) Result {
	var r Result
	toks, hinted, lsn := lex(sql)
	r.Hinted = hinted
	r.LSN = lsn
	r.Primary = hinted
	start := 0
	for i := 0; i <= len(toks); i++ {
		if i < len(toks) && toks[i].punct != ';' {
			continue
		}
		stmt := toks[start:i]
		start = i + 1
		if len(stmt) == 0 {
			continue
		}
		r.Statements++
		r.Tables = tables(stmt, r.Tables)
		primary, begin := statement(stmt)
		r.Primary = r.Primary || primary
		r.Begin = r.Begin || begin
		for j := 0; j+1 < len(stmt); j++ {
			if w := stmt[j].word; w != "" && stmt[j+1].punct == '(' && !notFunc[w] {
				r.Functions = appendUnique(r.Functions, w)
			}
		}
	}
	return r
}

func appendUnique(s []string, w string) []string {
	for _, x := range s {
		if x == w {
			return s
		}
	}
	return append(s, w)
}

// notFunc are keywords often followed by a parenthesis; leaving them out
// keeps pg_proc lookups short.
var notFunc = map[string]bool{
	"as": true, "in": true, "values": true, "exists": true, "any": true, "all": true,
	"and": true, "or": true, "not": true, "on": true, "using": true, "into": true,
	"from": true, "where": true, "over": true, "filter": true, "select": true,
	"join": true, "row": true, "array": true, "cast": true, "coalesce": true,
	"nullif": true, "greatest": true, "least": true, "'": true, "$": true, "0": true,
}

// tableWords precede a relation name.
var tableWords = map[string]bool{"from": true, "join": true, "update": true, "into": true, "table": true, "truncate": true}

// tables appends the relations stmt names; FROM a, b lists are followed.
func tables(t []tok, out []string) []string {
	for i := 0; i+1 < len(t); i++ {
		if !tableWords[t[i].word] {
			continue
		}
		for j := i + 1; j < len(t); j++ {
			w := t[j].word
			if w == "only" || w == "lateral" {
				continue
			}
			if w == "" || w == "'" || w == "$" || w == "0" || notFunc[w] {
				break
			}
			out = appendUnique(out, strings.Trim(w, `"`))
			// FROM a x, b y: skip an alias, continue after a comma.
			k := j + 1
			if k < len(t) && t[k].word == "as" {
				k++
			}
			if k < len(t) && t[k].word != "" && !tableWords[t[k].word] && !clauseWords[t[k].word] {
				k++
			}
			if t[i].word == "from" && k < len(t) && t[k].punct == ',' {
				j = k
				continue
			}
			break
		}
	}
	return out
}

// clauseWords end a FROM item.
var clauseWords = map[string]bool{
	"where": true, "group": true, "order": true, "limit": true, "offset": true, "having": true,
	"window": true, "union": true, "intersect": true, "except": true, "for": true, "on": true,
	"inner": true, "left": true, "right": true, "full": true, "cross": true, "natural": true,
	"set": true, "values": true, "returning": true, "fetch": true, "select": true,
}

// writeWords make any statement that contains them a write: DML inside a
// CTE or anywhere a read verb does not expect them.
var writeWords = map[string]bool{
	"insert": true, "update": true, "delete": true, "merge": true,
	"into": true, "truncate": true, "copy": true,
}

// statement classifies one statement's tokens.
func statement(t []tok) (primary, begin bool) {
	first := t[0].word
	switch first {
	case "select", "values", "table", "with":
		return hasWrite(t), false
	case "show":
		return false, false
	case "explain":
		for _, x := range t[1:] {
			if x.word == "analyze" || x.word == "analyse" {
				return true, false
			}
		}
		return hasWrite(t[1:]), false
	case "begin", "start":
		return !readOnly(t), true
	}
	return true, false
}

// hasWrite reports a data-modifying word or a locking clause (FOR UPDATE,
// FOR NO KEY UPDATE, FOR SHARE, FOR KEY SHARE) in a read statement.
func hasWrite(t []tok) bool {
	for i, x := range t {
		if writeWords[x.word] {
			return true
		}
		if x.word == "for" && i+1 < len(t) {
			switch t[i+1].word {
			case "update", "share", "no", "key":
				return true
			}
		}
	}
	return false
}

// readOnly reports BEGIN/START TRANSACTION … READ ONLY.
func readOnly(t []tok) bool {
	for i := 0; i+1 < len(t); i++ {
		if t[i].word == "read" && t[i+1].word == "only" {
			return true
		}
	}
	return false
}

// lex splits sql into tokens, dropping comments, literals and whitespace;
// quoted identifiers become words with their quotes so they never match a
// keyword. It reports whether a comment carried the primary hint.
func lex(s string) (toks []tok, hinted bool, lsn string) {
	comment := func(c string) {
		hinted = hinted || strings.Contains(c, Hint)
		if i := strings.Index(c, LSNHint); i >= 0 {
			v := c[i+len(LSNHint):]
			end := 0
			for end < len(v) && (v[end] == '/' || v[end] >= '0' && v[end] <= '9' || v[end] >= 'a' && v[end] <= 'f' || v[end] >= 'A' && v[end] <= 'F') {
				end++
			}
			lsn = v[:end]
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				end = len(s) - i
			}
			comment(s[i : i+end])
			i += end
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end := blockComment(s, i)
			comment(s[i:end])
			i = end
		case c == '\'':
			i = quoted(s, i+1, '\'', false)
			toks = append(toks, tok{word: "'"})
		case (c == 'e' || c == 'E') && i+1 < len(s) && s[i+1] == '\'':
			i = quoted(s, i+2, '\'', true)
			toks = append(toks, tok{word: "'"})
		case c == '"':
			end := quoted(s, i+1, '"', false)
			toks = append(toks, tok{word: s[i:end]})
			i = end
		case c == '$' && i+1 < len(s) && (s[i+1] == '$' || isIdentStart(s[i+1])):
			if end, ok := dollar(s, i); ok {
				toks = append(toks, tok{word: "'"})
				i = end
				continue
			}
			// A positional parameter such as $1.
			j := i + 1
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			toks = append(toks, tok{word: "$"})
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			toks = append(toks, tok{word: strings.ToLower(s[i:j])})
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && (isIdent(s[j]) || s[j] == '.') {
				j++
			}
			toks = append(toks, tok{word: "0"})
			i = j
		default:
			if c == '.' && len(toks) > 0 && toks[len(toks)-1].word != "" {
				// schema.func: keep only the function name, so drop the schema.
				toks = toks[:len(toks)-1]
				i++
				continue
			}
			toks = append(toks, tok{punct: c})
			i++
		}
	}
	return toks, hinted, lsn
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' || c == '$' }

// blockComment returns the index after the /* … */ comment starting at i;
// PostgreSQL's block comments nest.
func blockComment(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case s[i] == '/' && i+1 < len(s) && s[i+1] == '*':
			depth++
			i += 2
		case s[i] == '*' && i+1 < len(s) && s[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(s)
}

// quoted returns the index after a literal whose body starts at i; a doubled
// quote is an escaped quote, and in E” strings so is a backslash escape.
func quoted(s string, i int, q byte, backslash bool) int {
	for i < len(s) {
		switch {
		case backslash && s[i] == '\\':
			i += 2
		case s[i] == q:
			if i+1 < len(s) && s[i+1] == q {
				i += 2
				continue
			}
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

// dollar skips a $tag$ … $tag$ literal starting at i.
func dollar(s string, i int) (int, bool) {
	j := i + 1
	for j < len(s) && s[j] != '$' {
		if !isIdent(s[j]) || s[j] == '$' {
			return 0, false
		}
		j++
	}
	if j >= len(s) {
		return 0, false
	}
	tag := s[i : j+1]
	end := strings.Index(s[j+1:], tag)
	if end < 0 {
		return len(s), true
	}
	return j + 1 + end + len(tag), true
}
