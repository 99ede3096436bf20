package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"ticketd/inbound"
	"ticketd/tickets"
)

// userError is an error whose message is written for the person who caused
// it, with the HTTP status and API code it maps to.
type userError struct {
	status int
	code   string
	msg    string
}

func (e *userError) Error() string { return e.msg }

var (
	errNoRoute      = &userError{status: http.StatusNotFound, code: "not_found", msg: "There is no such page."}
	errUnauthorized = &userError{status: http.StatusUnauthorized, code: "unauthorized",
		msg: "Sign in first: send Authorization: Bearer <token>."}
	errForbidden = &userError{status: http.StatusForbidden, code: "forbidden",
		msg: "Your role may not do this."}
)

func badRequest(format string, args ...any) error {
	return &userError{status: http.StatusBadRequest, code: "bad_request", msg: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error {
	return &userError{status: http.StatusUnprocessableEntity, code: "invalid", msg: fmt.Sprintf(format, args...)}
}

// classify maps an error to its HTTP status, a stable code for the API and a
// message safe to show. This is the one place sentinel errors meet HTTP.
func classify(err error) (status int, code, msg string) {
	var ue *userError
	switch {
	case errors.As(err, &ue):
		return ue.status, ue.code, ue.msg
	case errors.Is(err, tickets.ErrNotFound):
		return http.StatusNotFound, "not_found", "There is no such ticket, or it is not yours to see."
	case errors.Is(err, tickets.ErrForbidden):
		return http.StatusForbidden, "forbidden", sentence(tickets.Reason(err))
	case errors.Is(err, tickets.ErrInvalid):
		return http.StatusUnprocessableEntity, "invalid", invalidReason(err)
	case errors.Is(err, tickets.ErrAlreadyReleased):
		return http.StatusConflict, "conflict", "This mail was opened as a ticket already."
	case errors.Is(err, inbound.ErrRejected):
		return http.StatusUnprocessableEntity, "rejected", "Intake refused this message; it was not stored."
	case unstorableText(err):
		return http.StatusBadRequest, "bad_request", "The request holds text that cannot be stored: a NUL character or bytes that are not UTF-8."
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "unavailable", "The request took too long; try again."
	}
	return http.StatusInternalServerError, "internal", "Something went wrong on our side; it has been logged."
}

// unstorableText reports PostgreSQL refusing a text value that came with
// the request: a NUL character or invalid UTF-8 (SQLSTATE 22021), or a
// character the database's encoding lacks (22P05).
func unstorableText(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05")
}

// invalidReason is the reason of an error wrapping tickets.ErrInvalid, as a
// sentence.
func invalidReason(err error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, tickets.ErrInvalid.Error()+": "); ok {
		msg = after
	}
	return sentence(msg)
}

// sentence starts msg with a capital letter and ends it with a full stop.
func sentence(msg string) string {
	r, size := utf8.DecodeRuneInString(msg)
	msg = string(unicode.ToUpper(r)) + msg[size:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}
