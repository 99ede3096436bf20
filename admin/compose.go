package admin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"

	"ticketd/inbound"
	"ticketd/signing"
	"ticketd/tickets"
)

// A requester writes on the portal or through the API as they would by
// mail: the web builds the RFC 5322 message they would have sent and hands
// it to intake (Options.Deliver), so it is threaded, parsed, stored and
// triaged by the same code as mail, with the same events and notifications.

const maxSubject = 300

// requesterMail is a mail a signed-in requester writes.
type requesterMail struct {
	from      tickets.User
	to        string // the support address, or a signed reply address for a reply
	subject   string
	body      string
	files     []upload
	messageID string
	inReplyTo string
	refs      []string
	date      time.Time
}

// upload is a file a requester attached on the portal.
type upload struct {
	name        string
	contentType string
	data        []byte
}

// bytes writes the mail: a text/plain UTF-8 part, quoted-printable, and the
// uploaded files as base64 attachments after it (multipart/mixed), with
// header fields encoded as RFC 2047 words where they are not ASCII.
func (m requesterMail) bytes() ([]byte, error) {
	var h mail.Header
	h.SetDate(m.date)
	h.SetAddressList("From", []*mail.Address{{Name: m.from.Name, Address: m.from.Email}})
	h.SetAddressList("To", []*mail.Address{{Address: m.to}})
	h.SetSubject(m.subject)
	h.SetMessageID(m.messageID)
	if m.inReplyTo != "" {
		// RFC 5322 3.6.4: In-Reply-To names the parent, References the chain.
		h.SetMsgIDList("In-Reply-To", []string{m.inReplyTo})
		h.SetMsgIDList("References", m.refs)
	}
	h.Set("MIME-Version", "1.0")
	body := strings.ReplaceAll(strings.ReplaceAll(m.body, "\r\n", "\n"), "\n", "\r\n") + "\r\n"
	var buf bytes.Buffer
	if len(m.files) == 0 {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		w, err := mail.CreateSingleInlineWriter(&buf, h)
		if err != nil {
			return nil, fmt.Errorf("write mail header: %w", err)
		}
		if err := writeAll(w, []byte(body)); err != nil {
			return nil, fmt.Errorf("write mail body: %w", err)
		}
		return buf.Bytes(), nil
	}
	mw, err := mail.CreateWriter(&buf, h)
	if err != nil {
		return nil, fmt.Errorf("write mail header: %w", err)
	}
	var th mail.InlineHeader
	th.Set("Content-Type", "text/plain; charset=utf-8")
	th.Set("Content-Transfer-Encoding", "quoted-printable")
	w, err := mw.CreateSingleInline(th)
	if err != nil {
		return nil, fmt.Errorf("write mail text: %w", err)
	}
	if err := writeAll(w, []byte(body)); err != nil {
		return nil, fmt.Errorf("write mail text: %w", err)
	}
	for _, f := range m.files {
		var ah mail.AttachmentHeader
		ah.SetContentType(f.contentType, nil)
		ah.SetFilename(f.name)
		ah.Set("Content-Transfer-Encoding", "base64")
		w, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, fmt.Errorf("write attachment %q: %w", f.name, err)
		}
		if err := writeAll(w, f.data); err != nil {
			return nil, fmt.Errorf("write attachment %q: %w", f.name, err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("write mail: %w", err)
	}
	return buf.Bytes(), nil
}

// writeAll writes b to a part and closes it.
func writeAll(w io.WriteCloser, b []byte) error {
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Close()
}

func cleanText(body string, max int, what string) (string, error) {
	body = strings.TrimSpace(strings.ReplaceAll(body, "\r\n", "\n"))
	if body == "" {
		return "", invalid("Write the %s first.", what)
	}
	if !utf8.ValidString(body) || strings.ContainsRune(body, 0) {
		return "", badRequest("The %s is not valid UTF-8 text.", what)
	}
	if utf8.RuneCountInString(body) > max {
		return "", invalid("The %s may have at most %d characters.", what, max)
	}
	return body, nil
}

// requesterNew opens a ticket by handing intake the mail the requester
// would have sent to the support address.
func (s *server) requesterNew(ctx context.Context, v *viewer, src inbound.Source, subject, body string, files []upload, key string) (inbound.Result, error) {
	subject = strings.Join(strings.Fields(subject), " ")
	if subject == "" {
		return inbound.Result{}, invalid("Give your request a subject.")
	}
	if utf8.RuneCountInString(subject) > maxSubject {
		return inbound.Result{}, invalid("The subject may have at most %d characters.", maxSubject)
	}
	body, err := cleanText(body, maxBody, "message")
	if err != nil {
		return inbound.Result{}, err
	}
	m := requesterMail{from: v.User, to: s.opts.SupportAddress, subject: subject, body: body, files: files,
		messageID: s.messageID("new", v.User.ID, key), date: s.now()}
	return s.deliver(ctx, m, src)
}

// requesterReply answers a ticket the viewer takes part in. The mail goes
// to the ticket's reply address signed for this requester
// (signing.PurposeReply), so intake threads it as it threads their replies
// by mail, commands and all.
func (s *server) requesterReply(ctx context.Context, v *viewer, src inbound.Source, id int64, body string, files []upload, key string) (inbound.Result, error) {
	body, err := cleanText(body, maxBody, "reply")
	if err != nil {
		return inbound.Result{}, err
	}
	t, err := s.st.VisibleTicket(ctx, tickets.Scope{ParticipantID: v.User.ID}, id, false)
	if err != nil {
		return inbound.Result{}, err
	}
	thread, err := s.st.ThreadMessageIDs(ctx, t.ID)
	if err != nil {
		return inbound.Result{}, err
	}
	token := s.opts.Keys.Sign(signing.Claims{Purpose: signing.PurposeReply, TicketID: t.ID, UserID: v.User.ID,
		Expires: s.now().Add(24 * time.Hour)})
	m := requesterMail{from: v.User, to: signing.ReplyAddress(s.opts.SupportAddress, token),
		subject: fmt.Sprintf("Re: [#%d] %s", t.ID, t.Subject), body: body, files: files,
		messageID: s.messageID("reply", v.User.ID, key), refs: trimRefs(thread), date: s.now()}
	if len(thread) > 0 {
		m.inReplyTo = thread[len(thread)-1]
	}
	return s.deliver(ctx, m, src)
}

func (s *server) deliver(ctx context.Context, m requesterMail, src inbound.Source) (inbound.Result, error) {
	raw, err := m.bytes()
	if err != nil {
		return inbound.Result{}, err
	}
	res, err := s.opts.Deliver(ctx, raw, src)
	if err != nil {
		return inbound.Result{}, fmt.Errorf("deliver %s mail from user %d: %w", src.Kind, m.from.ID, err)
	}
	s.log.Info("mail written on the web delivered", "ticket_id", res.TicketID, "message_id", res.MessageID,
		"source", src.Kind, "duplicate", res.Duplicate, "quarantined", res.Quarantined)
	return res, nil
}
