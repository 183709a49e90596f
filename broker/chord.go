package broker

import "context"

// ChordBackend is a result backend with Celery's native chord join (the
// Redis backend): header tasks record their results, and the one that
// completes the header fires the body, whichever worker (Go or Python)
// runs it.
type ChordBackend interface {
	// SetChordSize records the header's length; the sender writes it
	// before publishing the last header task.
	SetChordSize(ctx context.Context, groupID string, size int) error
	// ChordPartReturn records a finished header task.
	ChordPartReturn(ctx context.Context, part ChordPart) (*ChordJoin, error)
	// ChordCleanup deletes the chord's keys after the body was sent.
	ChordCleanup(ctx context.Context, groupID string) error
}

// GroupBackend stores group results as Celery's GroupResult.save() does.
type GroupBackend interface {
	SaveGroup(ctx context.Context, group ResultNode) error
	RestoreGroup(ctx context.Context, groupID string) (ResultNode, error)
}

// ChordPart is a finished header task of a chord.
type ChordPart struct {
	GroupID string
	TaskID  string
	// GroupIndex is the task's position in the header (the message's
	// group_index header); nil sorts after every indexed part, as Celery's
	// '+inf' score does.
	GroupIndex *int
	// State is the task's ready state: SUCCESS, FAILURE or REVOKED.
	State State
	// Result is the return value, or the exception (*ExceptionInfo
	// or its dict) for FAILURE and REVOKED.
	Result any
}

// ChordJoin is the outcome of recording one chord part.
type ChordJoin struct {
	// Ready is true for exactly one caller: the one whose part completed
	// the header (count == size + adjustment). That caller fires the body
	// with Results, or fails it with Err, then calls ChordCleanup.
	Ready bool
	// Added is false when this very part (same id, state and result) was
	// recorded before: a redelivered task.
	Added bool
	// Count is the number of parts recorded so far; Size the expected
	// number (0 while the size is not written yet).
	Count, Size int
	// Results are the header results ordered by group_index (when Ready
	// and Err is nil).
	Results []any
	// Err is set when Ready and a header task failed: the body must be
	// marked FAILURE with Err.Exception() (Celery's ChordError).
	Err *ChordError
}

// ChordError is a failed chord: Celery's celery.exceptions.ChordError.
type ChordError struct {
	GroupID string
	// TaskID is the failed header task and Dependency its exception.
	TaskID     string
	Dependency ExceptionInfo
	// Message is Celery's text, e.g. "Dependency <id> raised ValueError('x')".
	Message string
}

func (e *ChordError) Error() string { return "chord " + e.GroupID + ": " + e.Message }

// Exception is what to store as the chord body's FAILURE, exactly as a
// Python worker would.
func (e *ChordError) Exception() *ExceptionInfo {
	return &ExceptionInfo{Type: "ChordError", Module: "celery.exceptions", Message: []any{e.Message}}
}
