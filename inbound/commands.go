package inbound

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"ticketd/inbound/mailparse"
	"ticketd/signing"
	"ticketd/tickets"
)

// authority is what a mail's reply address and sender prove about its
// commands.
type authority struct {
	// attempt: the mail concerns a staff member (its From, or the person
	// its reply address was made for), so its command lines are commands
	// to run or to refuse, never plain text.
	attempt bool
	// ok: the mail came to a valid reply address made for an active
	// moderator or admin, from that person's address, and no trusted
	// server reports DMARC or DKIM failure: its commands run and its
	// text goes to the requester as theirs.
	ok bool
	// user is the staff member acting (ok), or the one to tell why the
	// commands were refused; nil tells nobody.
	user    *tickets.User
	refusal string
	// deferred: all would be well, but DNS did not answer whether the
	// From is authenticated.
	deferred bool
}

// Reasons a staff member's commands are refused, as the receipt says them.
const (
	refuseNoToken     = "not sent to your signed reply address: reply to a mail from ticketd"
	refuseBadToken    = "the reply address is not valid: it was changed, or ticketd did not make it"
	refuseExpired     = "token expired: the reply address is too old, reply to a newer mail from ticketd"
	refuseOtherPerson = "token for another person: the reply address was made for someone else"
	refuseMismatch    = "sender mismatch: the From address is not the person the reply address was made for"
	refuseAuthFailure = "DMARC failure: the From address could not be verified"
	refuseNotAuth     = "the From address is not authenticated: commands need DMARC to pass, or where the domain publishes no DMARC record an aligned DKIM signature or SPF pass"
	refuseTemporary   = "the From address could not be verified: DNS did not answer (temperror); send it again later"
)

func isActiveStaff(u *tickets.User) bool {
	return u != nil && u.Active && u.Role.IsStaff()
}

// authorize looks up who a reply token was made for and decides.
func (p *process) authorize(ctx context.Context, tok *replyToken, fromUser *tickets.User) (authority, error) {
	if tok == nil {
		// No token threaded the mail; a token that is not ticketd's
		// still explains a refusal.
		for i := range p.d.tokens {
			tok = &p.d.tokens[i]
			break
		}
	}
	var tokUser *tickets.User
	if tok.authentic() {
		u, err := p.st.User(ctx, tok.claims.UserID)
		switch {
		case err == nil:
			tokUser = &u
		case !errors.Is(err, tickets.ErrNotFound):
			return authority{}, err
		}
	}
	if !p.d.senderIsFrom() {
		// Authority comes from the From field alone, the address DMARC
		// vouches for: the fallbacks that name the sender of a mail
		// without a readable From (Sender, Reply-To, the envelope) are
		// good for threading and storing, and prove nobody.
		fromUser = nil
	}
	a := decide(tok, tokUser, fromUser, p.senderRefusal())
	if a.deferred {
		if p.d.src.Kind == "smtp" {
			// Commands wait for DNS: the mail is answered 451 and
			// nothing is stored, so the sending server offers it
			// again and nothing is lost (RFC 7208 8.6 and RFC 7489
			// 6.6.2 ask a temporary failure for a temperror).
			// Keeping the mail and running its commands later would
			// need the same checks then, with the connection's
			// address and DNS as they were, and would apply
			// commands out of order with the mail; the sending
			// server's queue is the retry that already exists.
			return authority{}, fmt.Errorf("%w: %s", ErrDeferred, p.d.verdict.Summary())
		}
		// A mail taken by IMAP cannot be checked again: its trusted
		// server's verdict is in it for good.
		a.ok, a.refusal = false, refuseTemporary
	}
	return a, nil
}

// senderRefusal says why the sender checks refuse a staff member's mail:
// "" when its From is authenticated (or, with
// AllowUnauthenticatedCommands, when nothing reports a DMARC or DKIM
// failure), deferRefusal while DNS did not answer.
func (p *process) senderRefusal() string {
	v := p.d.verdict
	switch {
	case p.in.opt.AllowUnauthenticatedCommands:
		if fail := authFailure(v); fail != "" {
			return refuseAuthFailure + " (" + fail + ")"
		}
		return ""
	case v.Authenticated():
		return ""
	case v.Temporary():
		return deferRefusal
	case v == nil:
		return refuseNotAuth + " (no SPF, DKIM or DMARC result for this mail)"
	}
	return refuseNotAuth + " (" + v.Summary() + ")"
}

// deferRefusal is senderRefusal's answer while DNS did not answer.
const deferRefusal = "\x00defer"

// decide applies the rule of DESIGN.md: commands need BOTH a valid,
// unexpired reply address made for an active moderator or admin AND a
// From address that is that person's, and no DMARC or DKIM failure for
// the From domain from a trusted server. Refusals are told only to a real
// staff member known to ticketd — the person the token was made for, or
// else the staff member whose address the From names — at the address
// ticketd has for them, never at an address taken from the mail.
func decide(tok *replyToken, tokUser, fromUser *tickets.User, authFail string) authority {
	var a authority
	switch {
	case tok.authentic() && isActiveStaff(tokUser):
		a.user = tokUser
	case isActiveStaff(fromUser):
		a.user = fromUser
	default:
		return a // a requester's lines are text
	}
	a.attempt = true
	switch {
	case tok == nil:
		a.refusal = refuseNoToken
	case errors.Is(tok.err, signing.ErrExpired):
		a.refusal = refuseExpired
	case tok.err != nil || tokUser == nil:
		a.refusal = refuseBadToken
	case fromUser != nil && fromUser.ID == tokUser.ID:
		if !isActiveStaff(tokUser) {
			a.refusal = refuseOtherPerson // unreachable: a requester's own token is no attempt
		}
	case isActiveStaff(fromUser):
		a.refusal = refuseOtherPerson
	default:
		a.refusal = refuseMismatch
	}
	if a.refusal == "" && authFail == deferRefusal {
		a.deferred = true
		return a
	}
	if a.refusal == "" && authFail != "" {
		a.refusal = authFail
	}
	a.ok = a.refusal == ""
	return a
}

// refusal is a command that was understood but may not be applied.
type refusal struct{ reason string }

func (r refusal) Error() string { return r.reason }

func refuse(format string, args ...any) error { return refusal{fmt.Sprintf(format, args...)} }

// applyCommands runs each command in a savepoint of its own, so that each
// applies completely or not at all, and says what happened to each line.
func (p *process) applyCommands(ctx context.Context, ticketID int64, actor *tickets.User, cmds []mailparse.Command) ([]ReceiptLine, error) {
	var lines []ReceiptLine
	for _, c := range cmds {
		sp, err := p.tx.Begin(ctx)
		if err != nil {
			return nil, fmt.Errorf("begin savepoint for command %q: %w", c.Line, err)
		}
		line, err := p.apply(ctx, tickets.On(sp), ticketID, actor, c)
		var r refusal
		switch {
		case err == nil:
			if err := sp.Commit(ctx); err != nil {
				return nil, fmt.Errorf("release savepoint of command %q: %w", c.Line, err)
			}
			lines = append(lines, line)
			continue
		case errors.As(err, &r):
			lines = append(lines, refusedLine(c, r.reason))
		case errors.Is(err, tickets.ErrInvalid):
			lines = append(lines, refusedLine(c, strings.TrimPrefix(err.Error(), tickets.ErrInvalid.Error()+": ")))
		case unstorable(err):
			lines = append(lines, refusedLine(c, "the value cannot be stored (it is too long, or not text)"))
		default:
			_ = sp.Rollback(ctx)
			return nil, fmt.Errorf("apply command %q: %w", c.Line, err)
		}
		if err := sp.Rollback(ctx); err != nil {
			return nil, fmt.Errorf("roll back command %q: %w", c.Line, err)
		}
	}
	return lines, nil
}

// unstorable reports PostgreSQL refusing a value itself: a data exception
// (SQLSTATE class 22) or a value over a limit, such as an index entry
// (class 54). The same command would fail again, so it is refused rather
// than failing the whole mail.
func unstorable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "54"))
}

func refusedLine(c mailparse.Command, reason string) ReceiptLine {
	return ReceiptLine{Command: c.Line, Reason: reason}
}

func applied(c mailparse.Command, ch tickets.Change, show func(string) string) ReceiptLine {
	field := ch.Field
	if field == "helpful_notes" {
		field = "notes"
	}
	return ReceiptLine{Command: c.Line, Applied: true, Field: field, Old: show(ch.Old), New: show(ch.New)}
}

func same(s string) string { return s }

func statusLabel(s string) string {
	if s == "" {
		return ""
	}
	return tickets.Status(s).Label()
}

func emailOrNobody(s string) string {
	if s == "" {
		return "nobody"
	}
	return s
}

// apply runs one command on st (a savepoint), when tickets.Permit allows
// it to the person acting on the ticket as it is now.
func (p *process) apply(ctx context.Context, st *tickets.Store, ticketID int64, actor *tickets.User, c mailparse.Command) (ReceiptLine, error) {
	by := tickets.Actor{UserID: &actor.ID, Channel: tickets.ChannelMail}
	acting := tickets.Acting{User: *actor, Staff: true, SeeUnassigned: p.in.opt.ModeratorsSeeUnassigned}
	t, err := st.TicketForUpdate(ctx, ticketID)
	if err != nil {
		return ReceiptLine{}, err
	}
	permit := func(act tickets.Action, to *tickets.User) error {
		if err := tickets.Permit(acting, t, act, to); err != nil {
			return refuse("not allowed: %s", tickets.Reason(err))
		}
		return nil
	}
	switch c.Name {
	case "status":
		s, err := tickets.ParseStatus(c.Value)
		if err != nil {
			return ReceiptLine{}, refuse("unknown value: %v", err)
		}
		if err := permit(tickets.ActionStatus, nil); err != nil {
			return ReceiptLine{}, err
		}
		ch, err := st.SetStatus(ctx, ticketID, s, by)
		if err != nil {
			return ReceiptLine{}, err
		}
		return applied(c, ch, statusLabel), nil
	case "priority":
		pr, err := tickets.ParsePriority(c.Value)
		if err != nil {
			return ReceiptLine{}, refuse("unknown value: %v", err)
		}
		if err := permit(tickets.ActionPriority, nil); err != nil {
			return ReceiptLine{}, err
		}
		ch, err := st.SetPriority(ctx, ticketID, pr, by)
		if err != nil {
			return ReceiptLine{}, err
		}
		return applied(c, ch, same), nil
	case "assign":
		to, err := p.assignee(ctx, st, actor, c.Value)
		if err != nil {
			return ReceiptLine{}, err
		}
		if err := permit(tickets.ActionAssign, to); err != nil {
			return ReceiptLine{}, err
		}
		var ch tickets.Change
		if to == nil {
			ch, err = st.Unassign(ctx, ticketID, by)
		} else {
			ch, err = st.Assign(ctx, ticketID, to.ID, "assigned by mail by "+actor.Email, by)
		}
		if err != nil {
			return ReceiptLine{}, err
		}
		return applied(c, ch, emailOrNobody), nil
	case "note":
		if err := permit(tickets.ActionNotes, nil); err != nil {
			return ReceiptLine{}, err
		}
		ch, err := st.SetHelpfulNotes(ctx, ticketID, c.Value, by)
		if err != nil {
			return ReceiptLine{}, err
		}
		return applied(c, ch, same), nil
	case "skills":
		var skills []string
		if v := strings.ToLower(strings.TrimSpace(c.Value)); v != "none" && v != "-" {
			skills = tickets.SplitSkills(c.Value)
		}
		if err := permit(tickets.ActionSkills, nil); err != nil {
			return ReceiptLine{}, err
		}
		ch, err := st.SetSkills(ctx, ticketID, skills, by)
		if err != nil {
			return ReceiptLine{}, err
		}
		return applied(c, ch, same), nil
	}
	return ReceiptLine{}, refuse("unknown command %q", c.Name)
}

// assignee reads the value of "assign: <email>|me|nobody": the user to
// assign, nil for nobody.
func (p *process) assignee(ctx context.Context, st *tickets.Store, actor *tickets.User, value string) (*tickets.User, error) {
	v := strings.ToLower(strings.Trim(strings.TrimSpace(value), "<>"))
	switch v {
	case "nobody", "none", "unassigned", "unassign", "-":
		return nil, nil
	case "me", "myself":
		return actor, nil
	}
	u, err := st.UserByEmail(ctx, v)
	if errors.Is(err, tickets.ErrNotFound) {
		return nil, refuse("unknown value: nobody at ticketd has the address %q", value)
	}
	if err != nil {
		return nil, err
	}
	if !isActiveStaff(&u) {
		return nil, refuse("unknown value: %s is not an active moderator or admin", u.Email)
	}
	return &u, nil
}
