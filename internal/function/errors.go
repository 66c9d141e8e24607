package function

import (
	"errors"
	"fmt"
)

// UserError is an error meant for the caller: its kind (a sentinel such
// as ErrInvalid or a package's ErrNotFound), which each wire protocol maps
// to its own code and status in its one mapper, and the message in the
// caller's terms, which the mapper passes on as it is.
type UserError struct {
	Kind error
	Msg  string
}

func (e *UserError) Error() string { return e.Kind.Error() + ": " + e.Msg }

// Unwrap makes errors.Is(err, e.Kind) hold.
func (e *UserError) Unwrap() error { return e.Kind }

// Errorf is a UserError of kind with a formatted message.
func Errorf(kind error, format string, args ...any) error {
	return &UserError{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Message is the caller's part of err: the message of the UserError it
// wraps, however deep, or else err's own text.
func Message(err error) string {
	if ue, ok := errors.AsType[*UserError](err); ok {
		return ue.Msg
	}
	return err.Error()
}
