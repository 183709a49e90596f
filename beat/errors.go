package beat

import "errors"

var (
	// ErrInvalidEntry is wrapped by errors about an entry's fields.
	ErrInvalidEntry = errors.New("beat: invalid entry")
	// ErrClosed is returned by calls after Shutdown.
	ErrClosed = errors.New("beat: closed")
	// ErrStale means another beat has taken the lead with a newer fencing
	// token: this one must not dispatch.
	ErrStale = errors.New("beat: fenced off by a newer leader")
)
