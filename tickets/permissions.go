package tickets

import (
	"errors"
	"fmt"
	"strings"
)

// Who may change what on a ticket. The web pages, the API and mailed
// commands all ask Permit, each after proving in its own way who is acting
// (a password session or an API token; a mail to the person's own signed
// reply address from their authenticated From), so a person has the same
// powers whichever way they come in, and only the powers they have now.

// ErrForbidden marks a change the person acting may not make. The error's
// text after "tickets: forbidden: " says why, for that person.
var ErrForbidden = errors.New("tickets: forbidden")

// Action is a change to a ticket that needs permission.
type Action string

const (
	// ActionAssign sets the assignee: to someone else (admins only), to
	// oneself when the ticket is unassigned (taking it), or to nobody or
	// an admin when the ticket is one's own (handing it back).
	ActionAssign   Action = "assign"
	ActionStatus   Action = "status"
	ActionPriority Action = "priority"
	ActionNotes    Action = "notes"
	ActionSkills   Action = "skills"
	// ActionRelease shows a held message to the requester.
	ActionRelease Action = "release"
)

// Acting is a person as they proved themselves for one request.
type Acting struct {
	User User
	// Staff: they proved a moderator's or admin's powers — signed in with
	// a password, sent an API token, or mailed from their authenticated
	// address to a reply address signed for them. A portal session opened
	// by a mailed link, and anything written as a requester, gives none.
	Staff bool
	// SeeUnassigned is MODERATORS_SEE_UNASSIGNED: moderators may see and
	// take tickets nobody is assigned to.
	SeeUnassigned bool
}

// Scope is the tickets Acting may see and change.
func (a Acting) Scope() Scope {
	if !a.staff() {
		return Scope{ParticipantID: a.User.ID}
	}
	return ScopeFor(a.User, a.SeeUnassigned)
}

func (a Acting) staff() bool { return a.Staff && a.User.Active && a.User.Role.IsStaff() }

func (a Acting) admin() bool { return a.staff() && a.User.Role == RoleAdmin }

// Covers reports whether the scope includes t. A participant scope cannot
// be decided from the ticket alone, and covers nothing here.
func (sc Scope) Covers(t Ticket) bool {
	switch {
	case sc.All:
		return true
	case sc.AssigneeID != 0 && t.AssigneeID != nil && *t.AssigneeID == sc.AssigneeID:
		return true
	case sc.Unassigned && t.AssigneeID == nil:
		return true
	}
	return false
}

func forbidden(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrForbidden, fmt.Sprintf(format, args...))
}

// Permit decides whether a may make act on t, as t is now (the caller holds
// it locked, in the transaction of the change). For ActionAssign, to is the
// new assignee, nil for nobody. It returns nil, or an error wrapping
// ErrForbidden that says why:
//
//   - only staff acting as staff change tickets; requesters write text;
//   - an admin may do anything to any ticket, and assign it to anyone
//     active on the staff;
//   - a moderator acts only on tickets in their scope now: those assigned
//     to them (and unassigned ones with SeeUnassigned), so a former
//     assignee can do nothing; there they set status, priority, notes and
//     skills, release held messages, take an unassigned ticket, and hand
//     back their own ticket to nobody or to an admin.
func Permit(a Acting, t Ticket, act Action, to *User) error {
	switch act {
	case ActionAssign, ActionStatus, ActionPriority, ActionNotes, ActionSkills, ActionRelease:
	default:
		return forbidden("%q is not a change ticketd knows", act)
	}
	if !a.staff() {
		return forbidden("only staff change tickets, and %s is not acting as staff here", a.User.Email)
	}
	if !a.Scope().Covers(t) {
		if t.AssigneeID == nil {
			return forbidden("ticket #%d is unassigned, and moderators here work only the tickets assigned to them", t.ID)
		}
		return forbidden("ticket #%d is assigned to someone else", t.ID)
	}
	if act != ActionAssign || a.admin() {
		return nil // whether to may be assigned at all is Store.Assign's check
	}
	mine := t.AssigneeID != nil && *t.AssigneeID == a.User.ID
	switch {
	case to != nil && to.ID == a.User.ID:
		if t.AssigneeID == nil || mine {
			return nil // taking an unassigned ticket, or keeping one's own
		}
		return forbidden("ticket #%d is assigned to someone else; only an admin can take it over", t.ID)
	case to != nil && to.Role != RoleAdmin:
		return forbidden("a moderator assigns a ticket only to themselves (me), or hands their own back to an admin")
	case !mine:
		return forbidden("a moderator hands back only a ticket assigned to them")
	}
	return nil // handing one's own ticket back to nobody or to an admin
}

// Reason is the sentence of an ErrForbidden error, without its prefix.
func Reason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ErrForbidden.Error()+": "); i >= 0 {
		return msg[i+len(ErrForbidden.Error())+2:]
	}
	return msg
}
