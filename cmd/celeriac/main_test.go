package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/celeriac/celeriac/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) != "" { // a celeriac process of a signal test
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// testEnv returns an env with captured stdout and stderr and the given
// environment.
func testEnv(vars map[string]string) (*env, *syncBuffer, *syncBuffer) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	return &env{stdout: out, stderr: errOut, getenv: func(k string) string { return vars[k] }}, out, errOut
}

// syncBuffer captures output written concurrently.
type syncBuffer = testenv.Buffer

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met before the deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// flagCase is one command line for a subcommand's flag parser: either
// check inspects the parsed flags, or wantErr is part of the error.
type flagCase[F any] struct {
	name    string
	args    []string
	env     map[string]string
	check   func(t *testing.T, f *F)
	wantErr string
}

// runFlagCases parses each case's args with parse, as the subcommand does.
func runFlagCases[F any](t *testing.T, cases []flagCase[F], parse func(f *F, e *env, args []string) error) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _ := testEnv(tc.env)
			var f F
			err := parse(&f, e, tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, &f)
		})
	}
}
