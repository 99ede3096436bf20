package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"ticketd/tickets"
)

// The changes the pages and the API make, with the role rules in one place.
// Each runs in one transaction that first locks the ticket within the
// viewer's scope: a ticket outside it is tickets.ErrNotFound, whatever the
// role, so nobody learns that it exists.

const (
	maxNotes = 20000
	maxBody  = 100000
)

// withTicket runs fn in a transaction on the ticket, locked, when the viewer
// may see it.
func (s *server) withTicket(ctx context.Context, v *viewer, id int64, fn func(tx *tickets.Store, t tickets.Ticket) error) error {
	return s.st.InTx(ctx, func(tx *tickets.Store) error {
		t, err := tx.VisibleTicket(ctx, s.scope(v), id, true)
		if err != nil {
			return err
		}
		return fn(tx, t)
	})
}

// assignee names whom a ticket goes to: by id, or when that is 0 by
// address.
type assignee struct {
	id    int64
	email string
}

// acting is the viewer as tickets.Permit knows them: staff powers only
// with a password session or an API token, never with a portal link.
func (s *server) acting(v *viewer) tickets.Acting {
	return tickets.Acting{User: v.User, Staff: v.staff(), SeeUnassigned: s.opts.ModeratorsSeeUnassigned}
}

// assign gives the ticket to the assignee, as tickets.Permit allows: admins
// assign anyone active on the staff; a moderator takes an unassigned ticket
// they may see, or hands their own back to an admin. An address is looked
// up only for a caller who may assign to it, so that nobody else learns
// which addresses have accounts.
func (s *server) assign(ctx context.Context, v *viewer, ch tickets.Channel, id int64, to assignee, reason string) (tickets.Change, error) {
	var c tickets.Change
	err := s.withTicket(ctx, v, id, func(tx *tickets.Store, t tickets.Ticket) error {
		assigneeID := to.id
		if !v.staff() {
			return errForbidden
		}
		if assigneeID == 0 && to.email != "" && !v.admin() && !strings.EqualFold(to.email, v.User.Email) {
			return errForbidden
		}
		if assigneeID == 0 && to.email != "" {
			u, err := tx.UserByEmail(ctx, to.email)
			if isNotFound(err) {
				return invalid("Nobody has the address %s.", to.email)
			}
			if err != nil {
				return err
			}
			assigneeID = u.ID
		}
		if assigneeID == 0 {
			return invalid("Choose whom to assign the ticket to.")
		}
		target := tickets.User{ID: assigneeID}
		if u, err := tx.User(ctx, assigneeID); err == nil {
			target = u
		} else if !isNotFound(err) {
			return err
		}
		if err := tickets.Permit(s.acting(v), t, tickets.ActionAssign, &target); err != nil {
			return err
		}
		reason = strings.TrimSpace(reason)
		if reason == "" {
			reason = "assigned by " + v.User.Display()
			if assigneeID == v.User.ID {
				reason = "taken by " + v.User.Display()
			}
		}
		var err error
		c, err = tx.Assign(ctx, t.ID, assigneeID, reason, v.actor(ch))
		return err
	})
	return c, err
}

// staffChange makes change to ticket id in the ticket's transaction when
// tickets.Permit lets the viewer make act on it; a ticket outside the
// viewer's scope is not found.
func (s *server) staffChange(ctx context.Context, v *viewer, id int64, act tickets.Action, change func(tx *tickets.Store, t tickets.Ticket) (tickets.Change, error)) (tickets.Change, error) {
	var c tickets.Change
	err := s.withTicket(ctx, v, id, func(tx *tickets.Store, t tickets.Ticket) error {
		if !v.staff() {
			return errForbidden
		}
		if err := tickets.Permit(s.acting(v), t, act, nil); err != nil {
			return err
		}
		var err error
		c, err = change(tx, t)
		return err
	})
	return c, err
}

func (s *server) setStatus(ctx context.Context, v *viewer, ch tickets.Channel, id int64, value string) (tickets.Change, error) {
	to, err := tickets.ParseStatus(value)
	if err != nil {
		return tickets.Change{}, invalid("%s", err)
	}
	return s.staffChange(ctx, v, id, tickets.ActionStatus, func(tx *tickets.Store, t tickets.Ticket) (tickets.Change, error) {
		return tx.SetStatus(ctx, t.ID, to, v.actor(ch))
	})
}

func (s *server) setPriority(ctx context.Context, v *viewer, ch tickets.Channel, id int64, value string) (tickets.Change, error) {
	p, err := tickets.ParsePriority(value)
	if err != nil {
		return tickets.Change{}, invalid("%s", err)
	}
	return s.staffChange(ctx, v, id, tickets.ActionPriority, func(tx *tickets.Store, t tickets.Ticket) (tickets.Change, error) {
		return tx.SetPriority(ctx, t.ID, p, v.actor(ch))
	})
}

func (s *server) setNotes(ctx context.Context, v *viewer, ch tickets.Channel, id int64, notes string) (tickets.Change, error) {
	// Browsers send a text box's line breaks as CRLF (HTML 4.10.5.2);
	// notes keep LF, so saving them untouched changes nothing.
	notes = strings.ReplaceAll(notes, "\r\n", "\n")
	if utf8.RuneCountInString(notes) > maxNotes {
		return tickets.Change{}, invalid("Helpful notes may have at most %d characters.", maxNotes)
	}
	return s.staffChange(ctx, v, id, tickets.ActionNotes, func(tx *tickets.Store, t tickets.Ticket) (tickets.Change, error) {
		return tx.SetHelpfulNotes(ctx, t.ID, notes, v.actor(ch))
	})
}

var nonceRE = regexp.MustCompile(`^[0-9a-zA-Z_-]{8,64}$`)

// newNonce is the key a form carries so that submitting it twice writes once.
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// messageID makes the RFC 5322 Message-ID of a message written on the web
// (without angle brackets, as ticketd stores them). The same key gives the
// same id, so a form posted twice, or an API call retried with the same
// Idempotency-Key, is stored once.
func (s *server) messageID(kind string, userID int64, key string) string {
	if !nonceRE.MatchString(key) {
		key = newNonce()
	}
	// RFC 5322 3.6.4: unique, with a domain ticketd owns on the right.
	return fmt.Sprintf("%s.%d.%s@%s", kind, userID, key, s.domain)
}

// staffMessage stores a moderator's or admin's reply to the requester, or an
// internal note, with the files attached to it, in the ticket's thread. A reply is queued to the requester
// and the people copied (Notifier.StaffReply) in the same transaction, so it
// is sent exactly when it is stored. Replies and notes emit no event: the
// mail is queued here, not by a workflow. created is false when the key was
// used before and nothing new was stored.
func (s *server) staffMessage(ctx context.Context, v *viewer, ch tickets.Channel, id int64, body string, files []upload, internal bool, key string) (m tickets.Message, created bool, err error) {
	body = strings.TrimSpace(strings.ReplaceAll(body, "\r\n", "\n"))
	if body == "" {
		return m, false, invalid("Write something first.")
	}
	if utf8.RuneCountInString(body) > maxBody {
		return m, false, invalid("A message may have at most %d characters.", maxBody)
	}
	kind := tickets.KindReply
	prefix := "reply"
	if internal {
		kind, prefix = tickets.KindNote, "note"
	}
	msgID := s.messageID(prefix, v.User.ID, key)
	err = s.withTicket(ctx, v, id, func(tx *tickets.Store, t tickets.Ticket) error {
		if !v.staff() {
			return errForbidden
		}
		if prev, err := tx.MessageByRFCID(ctx, tickets.Outbound, msgID); err == nil {
			if prev.TicketID != t.ID {
				return invalid("That form was used for another ticket; reload the page.")
			}
			m = prev
			return nil
		} else if !isNotFound(err) {
			return err
		}
		requester, err := tx.User(ctx, t.RequesterID)
		if err != nil {
			return err
		}
		people, err := tx.Participants(ctx, t.ID)
		if err != nil {
			return err
		}
		var cc []string
		for _, p := range people {
			if p.ID != requester.ID {
				cc = append(cc, p.Email)
			}
		}
		thread, err := tx.ThreadMessageIDs(ctx, t.ID)
		if err != nil {
			return err
		}
		var parent string
		if len(thread) > 0 {
			parent = thread[len(thread)-1]
		}
		author := v.User.ID
		m, err = tx.InsertMessage(ctx, tickets.Message{
			TicketID: t.ID, Direction: tickets.Outbound, Kind: kind, Internal: internal, AuthorID: &author,
			MessageID: msgID, InReplyTo: parent, Refs: trimRefs(thread), FromAddress: v.User.Email,
			FromName: v.User.Name, ToAddresses: []string{requester.Email}, CcAddresses: cc,
			Subject: "Re: " + t.Subject, TextBody: body, ReplyText: body, ThreadRule: string(ch),
		})
		if err != nil {
			return err
		}
		for _, f := range files {
			sum := sha256.Sum256(f.data)
			if _, err := tx.InsertAttachment(ctx, tickets.Attachment{MessageID: m.ID, Filename: f.name,
				ContentType: f.contentType, Size: int64(len(f.data)), SHA256: sum[:], Data: f.data}); err != nil {
				return err
			}
		}
		created = true
		tid := t.ID
		if err := tx.Audit(ctx, tickets.AuditEntry{TicketID: &tid, ActorID: &author, Channel: ch,
			Action: prefix, NewValue: strconv.FormatInt(m.ID, 10)}); err != nil {
			return err
		}
		if internal {
			return nil
		}
		return s.opts.Notifier.StaffReply(ctx, tx, "web-reply:"+strconv.FormatInt(m.ID, 10), m.ID)
	})
	return m, created, err
}

// trimRefs keeps References short: the opening mail, which threads the
// conversation, and the newest ones (RFC 5322 3.6.4 allows trimming).
func trimRefs(ids []string) []string {
	const max = 20
	if len(ids) <= max {
		return ids
	}
	return append(ids[:1:1], ids[len(ids)-(max-1):]...)
}
