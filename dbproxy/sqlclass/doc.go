// Package sqlclass decides, from the text of a SQL string alone, whether it
// may run on a read-only standby or must go to the primary.
//
// It is a small lexer, not a parser: it skips comments, string literals
// (standard, E” escapes, dollar quotes) and quoted identifiers, splits the
// text into statements at top-level semicolons and looks at each
// statement's keywords. Anything it does not recognise as a read is a
// write, so a mistake costs a trip to the primary, never a failed write on a
// replica. It also reports the functions a statement calls, so the caller
// can check their volatility in pg_proc, and the /* dbproxy:primary */ hint.
//
//	r := sqlclass.Classify("SELECT * FROM t WHERE id = $1 FOR UPDATE")
//	r.Primary // true
package sqlclass
