package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"ticketd/admin"
	"ticketd/inbound"
	"ticketd/signing"
	"ticketd/tickets"
)

// channel is a way a person changes a ticket.
type channel string

const (
	byWeb    channel = "web"    // the staff page, signed in with a password
	byAPI    channel = "api"    // /api/v1 with the person's token
	byMail   channel = "mail"   // a command mailed to the person's own signed reply address
	byPortal channel = "portal" // the portal's reply box, signed in by a mailed link
)

// change is one change a row of TestWhoMayChangeWhat tries, written the way
// each channel takes it.
type change struct {
	mail   string     // the command line
	web    url.Values // the form, posted to /tickets/{id}/<webPath>
	path   string
	api    string // the JSON body, sent to /api/v1/tickets/{id}/<apiPath>
	method string
	field  func(tickets.Ticket) string // what the change moves
	want   string                      // the field's value once it applied
}

func setStatus() change {
	return change{mail: "status: completed", path: "status", web: url.Values{"status": {"completed"}},
		method: http.MethodPost, api: `{"status": "completed"}`,
		field: func(t tickets.Ticket) string { return string(t.Status) }, want: "completed"}
}

func setPriority() change {
	return change{mail: "priority: low", path: "priority", web: url.Values{"priority": {"low"}},
		field: func(t tickets.Ticket) string { return string(t.Priority) }, want: "low"}
}

func setNotes() change {
	return change{mail: "note: try the other cable", path: "notes", web: url.Values{"notes": {"try the other cable"}},
		method: http.MethodPut, api: `{"notes": "try the other cable"}`,
		field: func(t tickets.Ticket) string { return t.HelpfulNotes }, want: "try the other cable"}
}

func setSkills() change {
	return change{mail: "skills: printers",
		field: func(t tickets.Ticket) string { return strings.Join(t.Skills, ",") }, want: "printers"}
}

// assignTo gives the ticket to u; nil hands it to nobody (mail only: the
// web and the API have no unassign).
func assignTo(u *tickets.User, who string) change {
	c := change{field: func(t tickets.Ticket) string {
		return fmt.Sprint(t.AssigneeID != nil && u != nil && *t.AssigneeID == u.ID, t.AssigneeID == nil)
	}}
	if u == nil {
		c.mail, c.want = "assign: nobody", "false true"
		return c
	}
	c.mail, c.want = "assign: "+who, "true false"
	c.path, c.web = "assign", url.Values{"assignee_id": {itoa(u.ID)}}
	c.method, c.api = http.MethodPost, fmt.Sprintf(`{"assignee_id": %d}`, u.ID)
	return c
}

// TestWhoMayChangeWhat runs each row through every channel that offers the
// change: the web, the API and mail must agree, because each asks
// tickets.Permit.
func TestWhoMayChangeWhat(t *testing.T) {
	t.Parallel()
	type row struct {
		name          string
		seeUnassigned bool
		assignee      string // "mod", "mod2" or "" for nobody
		actor         string // "admin", "mod", "mod2" or "req"
		change        func(e *env) change
		channels      []channel
		allowed       bool
	}
	all := []channel{byWeb, byAPI, byMail}
	rows := []row{
		{"the assignee sets the status", false, "mod", "mod", func(*env) change { return setStatus() }, all, true},
		{"the assignee sets the priority", false, "mod", "mod", func(*env) change { return setPriority() }, []channel{byWeb, byMail}, true},
		{"the assignee sets the notes", false, "mod", "mod", func(*env) change { return setNotes() }, all, true},
		{"the assignee sets the skills", false, "mod", "mod", func(*env) change { return setSkills() }, []channel{byMail}, true},
		{"an admin sets the status of any ticket", false, "mod2", "admin", func(*env) change { return setStatus() }, all, true},
		{"an admin assigns anyone", false, "mod", "admin", func(e *env) change { return assignTo(&e.mod2, e.mod2.Email) }, all, true},
		{"an admin takes a ticket someone holds", false, "mod", "admin", func(e *env) change { return assignTo(&e.admin, "me") }, all, true},
		{"a former assignee cannot set the status", false, "mod2", "mod", func(*env) change { return setStatus() }, all, false},
		{"a former assignee cannot set the priority", false, "mod2", "mod", func(*env) change { return setPriority() }, []channel{byWeb, byMail}, false},
		{"a former assignee cannot set the notes", false, "mod2", "mod", func(*env) change { return setNotes() }, all, false},
		{"a former assignee cannot set the skills", false, "mod2", "mod", func(*env) change { return setSkills() }, []channel{byMail}, false},
		{"a moderator cannot take a ticket someone holds", false, "mod2", "mod", func(e *env) change { return assignTo(&e.mod, "me") }, all, false},
		{"a moderator cannot take an unassigned ticket they do not see", false, "", "mod", func(e *env) change { return assignTo(&e.mod, "me") }, all, false},
		{"a moderator takes an unassigned ticket they see", true, "", "mod", func(e *env) change { return assignTo(&e.mod, "me") }, all, true},
		{"a moderator sets the status of an unassigned ticket they see", true, "", "mod", func(*env) change { return setStatus() }, all, true},
		{"a moderator cannot give a ticket to another moderator", false, "mod", "mod", func(e *env) change { return assignTo(&e.mod2, e.mod2.Email) }, all, false},
		{"the assignee hands the ticket back to an admin", false, "mod", "mod", func(e *env) change { return assignTo(&e.admin, e.admin.Email) }, all, true},
		{"the assignee hands the ticket back to nobody", false, "mod", "mod", func(*env) change { return assignTo(nil, "") }, []channel{byMail}, true},
		{"another moderator cannot hand the ticket back", false, "mod", "mod2", func(*env) change { return assignTo(nil, "") }, []channel{byMail}, false},
		{"a requester cannot set the status", false, "mod", "req", func(*env) change { return setStatus() }, all, false},
		{"a requester cannot take the ticket", false, "", "req", func(e *env) change { return assignTo(&e.req, "me") }, []channel{byAPI, byMail}, false},
		{"a requester cannot set the notes", false, "mod", "req", func(*env) change { return setNotes() }, []channel{byAPI, byMail}, false},
		// Staff copied on a ticket who came in by a portal link write as
		// requesters: their command lines are text.
		{"a moderator on the portal cannot set the status", false, "mod2", "mod", func(*env) change { return setStatus() }, []channel{byPortal}, false},
		{"an admin on the portal cannot set the priority", false, "mod", "admin", func(*env) change { return setPriority() }, []channel{byPortal}, false},
		{"the assignee on the portal cannot set the status", false, "mod", "mod", func(*env) change { return setStatus() }, []channel{byPortal}, false},
		{"the assignee on the portal cannot set the notes", false, "mod", "mod", func(*env) change { return setNotes() }, []channel{byPortal}, false},
	}
	// One web per setting; each row works on a ticket of its own.
	envs := map[bool]*env{}
	for _, see := range []bool{false, true} {
		envs[see] = newEnv(t, func(o *admin.Options) { o.ModeratorsSeeUnassigned = see })
	}
	for _, r := range rows {
		for _, ch := range r.channels {
			t.Run(r.name+"/"+string(ch), func(t *testing.T) {
				t.Parallel()
				e := *envs[r.seeUnassigned]
				e.t = t
				people := map[string]tickets.User{"admin": e.admin, "mod": e.mod, "mod2": e.mod2, "req": e.req}
				var assignee *tickets.User
				if u, ok := people[r.assignee]; ok {
					assignee = &u
				}
				tk := e.ticket("Printer on fire: "+r.name+" by "+string(ch), "It smokes.", e.req, assignee, tickets.PriorityMedium)
				actor := people[r.actor]
				// The actor takes part in the ticket, so that a portal
				// link may sign them in to it.
				if err := e.st.AddParticipant(context.Background(), tk.ID, actor.ID); err != nil {
					t.Fatal(err)
				}
				c := r.change(&e)
				before := c.field(tk)
				audit := e.count(`SELECT count(*) FROM audit_log WHERE ticket_id = $1`, tk.ID)
				e.try(tk, actor, ch, c)
				after, err := e.st.Ticket(context.Background(), tk.ID)
				if err != nil {
					t.Fatal(err)
				}
				got := c.field(after)
				switch {
				case r.allowed && got != c.want:
					t.Errorf("%s by %s: %s is %q, want %q", c.mail, ch, r.actor, got, c.want)
				case !r.allowed && got != before:
					t.Errorf("%s by %s: %s changed it from %q to %q", c.mail, ch, r.actor, before, got)
				case !r.allowed && e.count(`SELECT count(*) FROM audit_log WHERE ticket_id = $1 AND action <> 'reply'`, tk.ID) != audit:
					t.Errorf("%s by %s: a refused change left an audit entry", c.mail, ch)
				}
			})
		}
	}
}

// try makes change c to tk as actor through ch, and checks that a refusal
// is an answer, not a failure.
func (e *env) try(tk tickets.Ticket, actor tickets.User, ch channel, c change) {
	e.t.Helper()
	path := "/tickets/" + itoa(tk.ID) + "/" + c.path
	switch ch {
	case byWeb:
		b := e.client()
		if actor.Role.IsStaff() {
			b.signIn(actor)
		} else {
			b.signInLink(actor, tk.ID) // requesters have no password
		}
		res := b.post(path, c.web)
		if res.StatusCode != http.StatusSeeOther && res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusForbidden {
			e.t.Fatalf("POST %s: %d %s", path, res.StatusCode, res.body)
		}
	case byAPI:
		res := e.api(e.token(actor), c.method, path, c.api)
		if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusForbidden {
			e.t.Fatalf("%s %s: %d %s", c.method, path, res.StatusCode, res.body)
		}
	case byMail:
		to := signing.ReplyAddress(support, e.keys.Sign(signing.Claims{Purpose: signing.PurposeReply,
			TicketID: tk.ID, UserID: actor.ID, Expires: time.Now().Add(time.Hour)}))
		raw := fmt.Sprintf("From: %s <%s>\r\nTo: %s\r\nSubject: Re: [#%d] %s\r\nMessage-ID: <cmd-%d@mail.example>\r\n\r\n%s\r\n\r\nDone here.\r\n",
			actor.Name, actor.Email, to, tk.ID, tk.Subject, time.Now().UnixNano(), c.mail)
		if _, err := e.intake.Deliver(context.Background(), []byte(raw), inbound.Source{Kind: "smtp",
			MailFrom: actor.Email, RcptTo: []string{to}}); err != nil {
			e.t.Fatal(err)
		}
	case byPortal:
		// A portal sign-in link, which anyone may ask for by mail.
		secret, err := e.st.CreatePortalToken(context.Background(), actor.ID, time.Hour, "192.0.2.1")
		if err != nil {
			e.t.Fatal(err)
		}
		b := e.client()
		if res := b.post("/portal/login", url.Values{"token": {secret}}); res.StatusCode != http.StatusSeeOther {
			e.t.Fatalf("portal sign-in: %d %s", res.StatusCode, res.body)
		}
		res := b.post("/portal/tickets/"+itoa(tk.ID)+"/reply", url.Values{"body": {c.mail + "\n\nDone here."}, "nonce": {"portal-nonce-" + itoa(tk.ID)}})
		if res.StatusCode != http.StatusSeeOther {
			e.t.Fatalf("portal reply: %d %s", res.StatusCode, res.body)
		}
	}
}
