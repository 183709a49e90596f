package sqlclass

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want Result
	}{
		{"select", "SELECT 1", Result{}},
		{"select_func", "SELECT now(), pg_catalog.lower('X')", Result{Functions: []string{"now", "lower"}}},
		{"values", "VALUES (1)", Result{}},
		{"show", "SHOW TimeZone", Result{}},
		{"empty", "  ; ", Result{}},
		{"insert", "INSERT INTO t VALUES (1)", Result{Primary: true}},
		{"update_lower", "update t set a=1", Result{Primary: true}},
		{"ddl", "CREATE TABLE t (a int)", Result{Primary: true, Functions: []string{"t"}}},
		{"set", "SET TIME ZONE 'UTC'", Result{Primary: true}},
		{"for_update", "SELECT * FROM t WHERE id=$1 FOR UPDATE", Result{Primary: true}},
		{"for_no_key_update", "select * from t for no key update", Result{Primary: true}},
		{"for_share", "select * from t for share skip locked", Result{Primary: true}},
		{"for_key_share", "select * from t FOR KEY SHARE", Result{Primary: true}},
		{"select_into", "SELECT * INTO t2 FROM t", Result{Primary: true}},
		{"cte_write", "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", Result{Primary: true}},
		{"cte_read", "WITH x AS (SELECT 1) SELECT * FROM x", Result{}},
		{"explain", "EXPLAIN SELECT 1", Result{}},
		{"explain_analyze", "EXPLAIN ANALYZE SELECT 1", Result{Primary: true}},
		{"begin", "BEGIN", Result{Primary: true, Begin: true}},
		{"begin_ro", "BEGIN READ ONLY", Result{Begin: true}},
		{"start_ro", "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", Result{Begin: true}},
		{"multi", "SELECT 1; UPDATE t SET a = 2", Result{Primary: true}},
		{"string_hides_keyword", "SELECT 'update; delete' AS x", Result{}},
		{"escape_string", `SELECT E'it\'s; insert' AS x`, Result{}},
		{"dollar_string", "SELECT $q$ insert into $q$, $$ for update $$", Result{}},
		{"comment_hides", "SELECT 1 -- for update\n", Result{}},
		{"nested_comment", "SELECT /* a /* insert */ b */ 1", Result{}},
		{"quoted_ident", `SELECT "update" FROM t`, Result{}},
		{"hint_block", "/* dbproxy:primary */ SELECT 1", Result{Primary: true, Hinted: true}},
		{"hint_line", "SELECT 1 -- dbproxy:primary", Result{Primary: true, Hinted: true}},
		{"lsn_hint", "/* dbproxy:lsn=0/16B3748 */ SELECT 1", Result{LSN: "0/16B3748"}},
		{"lsn_hint_garbage", "/* dbproxy:lsn=zz */ SELECT 1", Result{}},
		{"volatile_call", "SELECT nextval('s')", Result{Functions: []string{"nextval"}}},
		{"params", "SELECT $1::int, $2", Result{}},
		{"lock", "LOCK TABLE t", Result{Primary: true}},
		{"listen", "LISTEN ch", Result{Primary: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.sql)
			got.Tables, got.Statements = nil, 0 // covered by TestTables
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Classify(%q) (-want +got):\n%s", tc.sql, diff)
			}
		})
	}
}

func TestTables(t *testing.T) {
	tests := []struct {
		sql  string
		want []string
	}{
		{"SELECT * FROM auth_user WHERE id = 1", []string{"auth_user"}},
		{`SELECT * FROM public."auth_user" u JOIN auth_group g ON true`, []string{"auth_user", "auth_group"}},
		{"SELECT * FROM a, b AS bb, c WHERE a.x = b.x", []string{"a", "b", "c"}},
		{"SELECT * FROM (SELECT 1 FROM inner_t) s", []string{"inner_t"}},
		{"UPDATE t SET a = 1", []string{"t"}},
		{"INSERT INTO t2 (a) VALUES (1)", []string{"t2"}},
		{"DELETE FROM only t3", []string{"t3"}},
		{"SELECT 1", nil},
		{"SELECT count(*) FROM t LEFT JOIN u ON true", []string{"t", "u"}},
	}
	for _, tc := range tests {
		t.Run(tc.sql, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Classify(tc.sql).Tables); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"SELECT 1", "select $a$ x $a$", "/* /* */", "E'\\", "WITH x AS (UPDATE t SET a=1) SELECT 1", "$1$", "\"", "a.b(", "--"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := Classify(s)
		// A statement that writes stays a write whatever read follows it.
		if Classify("INSERT INTO t VALUES (1);"+s).Primary != true {
			t.Errorf("write lost after %q", s)
		}
		if r.Hinted && !r.Primary {
			t.Errorf("hint without primary for %q", s)
		}
	})
}
