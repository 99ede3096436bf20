package smtpserver

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

type backend struct{ s *Server }

func (b backend) NewSession(sc *smtp.Conn) (smtp.Session, error) {
	c := connOf(sc.Conn())
	if c == nil {
		return nil, errors.New("smtpserver: connection not accepted by this server")
	}
	_, isTLS := sc.TLSConnectionState()
	return &session{
		s:   b.s,
		c:   c,
		log: c.log,
		env: Envelope{
			CID:        c.cid,
			RemoteAddr: c.RemoteAddr().String(),
			Helo:       sc.Hostname(),
			TLS:        isTLS,
		},
	}, nil
}

// session is one client's state between EHLO and QUIT (or STARTTLS, after
// which go-smtp starts a new one).
type session struct {
	s   *Server
	c   *conn
	log *slog.Logger

	env      Envelope // CID, RemoteAddr, Helo, TLS, AuthUser stay; the rest is per mail
	sizeHint int64
}

var (
	// RFC 4954 6: authentication required.
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required"}
	// RFC 5321 4.2.3 and RFC 3463 X.3.0: mail system failure, try again.
	errNotStored = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Mail not stored, please try again later"}
	// RFC 3463 X.6.0: the content cannot be handled.
	errLineTooLong = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Line too long"}
)

func (ss *session) Reset() {
	ss.env.MailFrom = ""
	ss.env.RcptTo = nil
	ss.sizeHint = 0
}

func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if a := ss.s.opt.Auth; a != nil && a.Required && ss.env.AuthUser == "" {
		ss.refused("auth")
		return errAuthRequired
	}
	ss.Reset()
	ss.env.MailFrom = from
	if opts != nil {
		ss.sizeHint = opts.Size // RFC 1870: the client's estimate, checked by go-smtp
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !ss.s.opt.Accepts(to) {
		ss.log.Info("smtp recipient refused", "rcpt", to, "mail_from", ss.env.MailFrom, "remote", ss.env.RemoteAddr)
		ss.refused("recipient")
		// RFC 5321 3.6.2: a server that does not relay refuses foreign
		// recipients; RFC 3463 5.1.1: bad destination mailbox address.
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message: fmt.Sprintf("<%s>: no such mailbox here", to)}
	}
	ss.env.RcptTo = append(ss.env.RcptTo, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	ss.c.setInData(true)
	defer ss.c.setInData(false)

	start := time.Now()
	raw, weight, err := ss.read(r)
	if weight > 0 {
		defer ss.s.budget.release(weight)
	}
	if err != nil {
		var se *smtp.SMTPError
		switch {
		case errors.Is(err, smtp.ErrDataTooLarge):
			ss.log.Info("smtp message too large", "mail_from", ss.env.MailFrom, "max_bytes", ss.s.opt.MaxMessageBytes)
			ss.refused("size")
			return smtp.ErrDataTooLarge
		case errors.Is(err, smtp.ErrTooLongLine):
			ss.log.Info("smtp line too long", "mail_from", ss.env.MailFrom, "max_line", ss.s.opt.MaxLineLength)
			ss.refused("line_length")
			return errLineTooLong
		case errors.As(err, &se):
			ss.refused("busy")
			return se
		}
		// The client went quiet or away in the middle of the message:
		// the session ends after this answer, with 421 (RFC 5321 3.8).
		ss.log.Info("smtp message not received", "mail_from", ss.env.MailFrom, "err", err)
		ss.refused("not_received")
		ss.c.endAfterReply()
		return errNotStored
	}
	// RFC 5321 4.4 asks a receiver to prepend trace headers. The bytes are
	// kept exactly as sent instead, with the trace (client, envelope,
	// time) stored beside them, so that a retried mail hashes the same and
	// is recognised as stored.
	env := ss.env
	env.RcptTo = append([]string(nil), ss.env.RcptTo...)
	err = ss.deliver(raw, env)
	log := ss.log.With("mail_from", env.MailFrom, "rcpt", env.RcptTo, "bytes", len(raw),
		"ms", time.Since(start).Milliseconds())
	if err == nil {
		log.Info("smtp mail accepted")
		return nil
	}
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se):
		log.Warn("smtp mail refused", "code", se.Code, "err", err)
		if se.Code >= 500 {
			ss.refused("rejected")
		} else {
			ss.refused("not_stored")
		}
		return se
	case ss.s.opt.IsPermanent != nil && ss.s.opt.IsPermanent(err):
		log.Warn("smtp mail rejected", "err", err)
		ss.refused("rejected")
		// RFC 5321 4.2.2: 554 transaction failed, permanently.
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: "Message rejected: " + oneLine(err.Error(), 200)}
	default:
		log.Error("smtp mail not stored", "err", err)
		ss.refused("not_stored")
		return errNotStored
	}
}

// refused counts a refusal by its reason, one of a fixed set.
func (ss *session) refused(reason string) { ss.s.opt.Metrics.MailRefused("smtp", reason) }

// deliver calls Deliver, turning a panic into an error so the client is told
// to try again and the server goes on.
func (ss *session) deliver(raw []byte, env Envelope) (err error) {
	ctx, cancel := context.WithTimeout(ss.s.base, ss.s.opt.DeliverTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			ss.log.Error("smtp panic in deliver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("smtpserver: deliver panicked: %v", p)
		}
	}()
	return ss.s.opt.Deliver(ctx, raw, env)
}

// AuthMechanisms and Auth implement AUTH PLAIN (RFC 4616) when configured.
func (ss *session) AuthMechanisms() []string {
	if ss.s.opt.Auth == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	a := ss.s.opt.Auth
	if a == nil || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		okUser := subtle.ConstantTimeCompare([]byte(username), []byte(a.Username)) == 1
		okPass := subtle.ConstantTimeCompare([]byte(password), []byte(a.Password)) == 1
		if !okUser || !okPass || (identity != "" && identity != username) {
			ss.log.Warn("smtp authentication failed", "user", username, "remote", ss.env.RemoteAddr)
			return smtp.ErrAuthFailed
		}
		ss.env.AuthUser = username
		return nil
	}), nil
}

// freeBytes of a message of unknown size are read before it takes its
// share of Options.MaxInflightBytes.
const freeBytes = 1 << 20

// read reads the whole message, which go-smtp bounds by MaxMessageBytes,
// after taking its size from the in-flight budget: the size the client
// declared (RFC 1870), or, when it declared none, the message's own size
// when it is small, else MaxMessageBytes. A message that turns out larger
// than declared takes MaxMessageBytes before the rest is read. weight is
// what was taken, and what to release, error or not.
func (ss *session) read(r io.Reader) (raw []byte, weight int64, err error) {
	max := ss.s.opt.MaxMessageBytes
	var head []byte
	if hint := ss.sizeHint; hint > 0 {
		weight = min(hint, max)
		if err := ss.waitBudget(weight); err != nil {
			return nil, 0, err
		}
		// A declared size is an estimate (line endings, encodings):
		// a little more is read at the same weight.
		lr := &io.LimitedReader{R: r, N: weight + weight/16 + 4096 + 1}
		head, err = readMessage(lr, hint, max, nil)
		if err != nil || lr.N > 0 {
			return head, weight, err
		}
	} else {
		lr := &io.LimitedReader{R: r, N: freeBytes + 1}
		head, err = readMessage(lr, 0, max, nil)
		if err != nil {
			return nil, 0, err
		}
		if lr.N > 0 {
			if err := ss.waitBudget(int64(len(head))); err != nil {
				return nil, 0, err
			}
			return head, int64(len(head)), nil
		}
	}
	// The message's share grows to MaxMessageBytes. It gives back what it
	// holds and waits for the whole like any other: waiting on top of its
	// own share, a message larger than the budget would wait for itself.
	ss.s.budget.release(weight)
	if err := ss.waitBudget(max); err != nil {
		return nil, 0, err
	}
	raw, err = readMessage(r, 0, max, head)
	return raw, max, err
}

// errBusy: RFC 3463 X.3.1, mail system full, try again.
var errBusy = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1},
	Message: "Too much mail in progress, please try again later"}

func (ss *session) waitBudget(n int64) error {
	ctx, cancel := context.WithTimeout(ss.s.base, ss.s.opt.ReadTimeout)
	defer cancel()
	if err := ss.s.budget.acquire(ctx, n); err != nil {
		ss.log.Warn("smtp message waited too long for memory", "bytes", n, "err", err)
		return errBusy
	}
	return nil
}

// readMessage reads a message to its end. A size the client declared
// sizes the buffer once; otherwise the message is read in growing chunks
// after prefix and copied once, never holding more than about twice its
// size.
func readMessage(r io.Reader, hint, max int64, prefix []byte) ([]byte, error) {
	if hint > 0 && hint <= max && prefix == nil {
		buf := bytes.NewBuffer(make([]byte, 0, hint+1024))
		_, err := buf.ReadFrom(r)
		return buf.Bytes(), err
	}
	var (
		chunks [][]byte
		total  int
		size   = 4 << 10
	)
	if len(prefix) > 0 {
		chunks, total, size = [][]byte{prefix}, len(prefix), 1<<20
	}
	for {
		chunk := make([]byte, size)
		n := 0
		var err error
		for n < size && err == nil {
			var m int
			m, err = r.Read(chunk[n:])
			n += m
		}
		if n > 0 {
			chunks = append(chunks, chunk[:n])
			total += n
		}
		if err == io.EOF { // the end-of-data line; a lost connection is io.ErrUnexpectedEOF
			break
		}
		if err != nil {
			return nil, err
		}
		if size < 1<<20 {
			size *= 2
		}
	}
	if len(chunks) == 1 {
		return chunks[0], nil
	}
	out := make([]byte, 0, total)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out, nil
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max]
	}
	return s
}
