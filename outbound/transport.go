package outbound

import (
	"context"
	"errors"
	"fmt"
)

// Transport hands one composed mail to the next hop: an SMTP relay
// (Relay) or a Maildir (Maildir). A nil error means the next hop has taken
// responsibility for the mail (RFC 5321 4.1.1.4: the 250 after DATA).
type Transport interface {
	Send(ctx context.Context, from string, to []string, data []byte) error
}

// SendError is a failed delivery. Temporary ones (4xx answers, network
// and TLS trouble, a relay that refuses our credentials) are tried again
// later; permanent ones (5xx answers to MAIL, RCPT or DATA) never are.
type SendError struct {
	Temporary bool
	Code      int    // the SMTP reply code, 0 when the server gave none
	Message   string // the server's answer, or what went wrong
	Err       error
}

func (e *SendError) Error() string {
	kind := "permanent"
	if e.Temporary {
		kind = "temporary"
	}
	if e.Code != 0 {
		return fmt.Sprintf("outbound: %s failure: %d %s", kind, e.Code, e.Message)
	}
	return fmt.Sprintf("outbound: %s failure: %s", kind, e.Message)
}

func (e *SendError) Unwrap() error { return e.Err }

// Permanent reports whether err says that sending the same mail again
// cannot succeed. Errors that are not a *SendError count as temporary:
// when in doubt, try again.
func Permanent(err error) bool {
	var se *SendError
	return errors.As(err, &se) && !se.Temporary
}

func temporary(err error, format string, args ...any) *SendError {
	return &SendError{Temporary: true, Message: fmt.Sprintf(format, args...) + ": " + err.Error(), Err: err}
}
