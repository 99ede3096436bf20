package admin

import (
	"encoding/hex"
	"errors"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"

	"ticketd/inbound"
	"ticketd/tickets"
)

// The requesters' portal. A requester signs in without a password: by a
// one-time link mailed on request, or by the signed link in any
// notification mail (/t/{id}?k=...). Either way they see the tickets they
// take part in, and write through intake like mail.

// PortalSignInPage asks for an address to mail a sign-in link to.
type PortalSignInPage struct {
	Page
	Email string
	Error string
}

// PortalSentPage says a link is on its way, whether or not the address is
// known.
type PortalSentPage struct {
	Page
	Email string
}

// PortalLoginPage confirms a sign-in link with a button. Opening the link
// does not use it up: mail scanners that fetch links would otherwise spend
// it before its owner clicks.
type PortalLoginPage struct {
	Page
	Action  string // where the button posts
	Field   string // the form field that carries Token
	Token   string
	Email   string
	Current string // the address signed in now, when it is someone else's
}

func (s *server) portalSignInForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "portal_signin", PortalSignInPage{Page: s.page(r, "Sign in to your tickets", "portal")})
}

// portalSignIn mails a one-time sign-in link. The answer is the same
// whether the address is known, unknown or over its limit, so the form
// tells nobody who has an account.
func (s *server) portalSignIn(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	raw := r.PostFormValue("email")
	addr, err := mail.ParseAddress(raw)
	if err != nil {
		s.render(w, r, http.StatusUnprocessableEntity, "portal_signin", PortalSignInPage{
			Page: s.page(r, "Sign in to your tickets", "portal"), Email: raw,
			Error: "Enter the email address you write to us from."})
		return
	}
	email := tickets.NormalizeEmail(addr.Address)
	ip := s.clientIP(r)
	limited, err := s.overLimit(ctx, map[string]int{"link:" + email: s.opts.Limits.LinksPerAddress,
		"link-ip:" + clientKey(ip): s.opts.Limits.LinksPerIP})
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	if limited {
		s.log.Warn("sign-in link refused: too many requests", "remote", ip)
	} else if err := s.mailSignInLink(r, email, ip); err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "portal_sent", PortalSentPage{Page: s.page(r, "Check your mail", "portal"), Email: email})
}

func (s *server) mailSignInLink(r *http.Request, email, ip string) error {
	ctx := r.Context()
	u, err := s.st.UserByEmail(ctx, email)
	if errors.Is(err, tickets.ErrNotFound) || (err == nil && !u.Active) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx *tickets.Store) error {
		secret, err := tx.CreatePortalToken(ctx, u.ID, s.opts.SignInLinkTTL, ip)
		if err != nil {
			return err
		}
		link := s.link("/portal/login?token=" + url.QueryEscape(secret))
		dedupe := "sign-in:" + hex.EncodeToString(tickets.HashSecret(secret)[:12])
		if err := s.opts.Notifier.SignInLink(ctx, tx, dedupe, u, link); err != nil {
			return err
		}
		s.log.Info("sign-in link queued", "user_id", u.ID)
		return nil
	})
}

func (s *server) expiredLink(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusGone, "portal_signin", PortalSignInPage{Page: s.page(r, "Link expired", "portal"),
		Error: "This sign-in link has expired or was used already. Ask for a new one below."})
}

func (s *server) portalLoginForm(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	u, err := s.st.PortalTokenUser(r.Context(), token)
	if isNotFound(err) {
		s.expiredLink(w, r)
		return
	}
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "portal_login", PortalLoginPage{Page: s.page(r, "Sign in", "portal"),
		Action: "/portal/login", Field: "token", Token: token, Email: u.Email})
}

// portalLogin uses up a sign-in link and starts a new session for its
// owner.
func (s *server) portalLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, err := s.st.ConsumePortalToken(ctx, r.PostFormValue("token"))
	if isNotFound(err) && viewerFrom(ctx) != nil {
		// Clicked twice: the first click used the link and signed in.
		s.redirect(w, r, "/portal")
		return
	}
	if isNotFound(err) {
		s.expiredLink(w, r)
		return
	}
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	next := localPath(s.sessions.PopString(ctx, "next"))
	if err := s.sessions.RenewToken(ctx); err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.sessions.Put(ctx, "uid", u.ID)
	s.sessions.Put(ctx, "auth", authLink)
	s.log.Info("signed in by sign-in link", "user_id", u.ID, "remote", s.clientIP(r))
	if next == "" || len(next) < len("/portal") || next[:len("/portal")] != "/portal" {
		next = "/portal"
	}
	s.redirect(w, r, next)
}

// PortalGroup is the requester's tickets in one status.
type PortalGroup struct {
	Status tickets.Status
	Label  string
	Items  []tickets.TicketListItem
}

// PortalHomePage is "my tickets".
type PortalHomePage struct {
	Page
	Groups []PortalGroup
	Total  int
}

func (s *server) portalHome(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	items, total, err := s.st.ListTickets(ctx, tickets.TicketFilter{Scope: tickets.Scope{ParticipantID: v.User.ID},
		Sort: "updated", Limit: 500})
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	data := PortalHomePage{Page: s.page(r, "My tickets", "portal"), Total: total}
	for _, st := range tickets.Statuses {
		g := PortalGroup{Status: st, Label: st.Label()}
		for _, it := range items {
			if it.Status == st {
				g.Items = append(g.Items, it)
			}
		}
		data.Groups = append(data.Groups, g)
	}
	s.render(w, r, http.StatusOK, "portal_home", data)
}

// PortalTicketPage is one of the requester's tickets: the first answer and
// every message that is not internal.
type PortalTicketPage struct {
	Page
	Ticket   tickets.Ticket
	Assignee string
	Thread   []ThreadEntry
	Nonce    string
	Draft    string // a reply refused a moment ago, to be fixed and sent again
}

func (s *server) portalTicket(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	id, err := ticketID(r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	t, err := s.st.VisibleTicket(ctx, tickets.Scope{ParticipantID: v.User.ID}, id, false)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	base := "/portal/tickets/" + strconv.FormatInt(t.ID, 10)
	thread, err := s.thread(ctx, t, false, false, false, func(aid int64) string {
		return base + "/attachments/" + strconv.FormatInt(aid, 10)
	})
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	data := PortalTicketPage{Page: s.page(r, t.Subject, "portal"), Ticket: t, Thread: thread, Nonce: newNonce(),
		Draft: s.takeDraft(r, "body", t.ID)}
	if t.AssigneeID != nil {
		people := users{st: s.st}
		data.Assignee = people.get(ctx, t.AssigneeID)
	}
	s.render(w, r, http.StatusOK, "portal_ticket", data)
}

func (s *server) portalReply(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	id, err := ticketID(r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	back := "/portal/tickets/" + strconv.FormatInt(id, 10)
	var res inbound.Result
	files, err := formUploads(r)
	if err == nil {
		res, err = s.requesterReply(ctx, v, inbound.Source{Kind: "web", RemoteAddr: s.clientIP(r)}, id,
			r.PostFormValue("body"), files, r.PostFormValue("nonce"))
	}
	if err != nil {
		if status, _, msg := classify(err); status == http.StatusUnprocessableEntity {
			s.keepDraft(r, "body", id, r.PostFormValue("body"))
			s.flash(r, msg)
			s.redirect(w, r, back)
			return
		}
		s.errorPage(w, r, err)
		return
	}
	switch {
	case res.Quarantined:
		s.flash(r, "Your reply was received and is held for review.")
	case res.Duplicate:
		s.flash(r, "That reply was received already.")
	case res.TicketID != id && res.TicketID != 0:
		s.flash(r, "This ticket was closed a while ago, so your reply opened a new one.")
		back = "/portal/tickets/" + strconv.FormatInt(res.TicketID, 10)
	default:
		s.flash(r, "Your reply was added.")
	}
	s.redirect(w, r, back)
}

// PortalNewPage is the form that opens a ticket.
type PortalNewPage struct {
	Page
	Subject string
	Body    string
	Nonce   string
	Error   string
}

func (s *server) portalNewForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "portal_new", PortalNewPage{Page: s.page(r, "New request", "portal-new"), Nonce: newNonce()})
}

func (s *server) portalNew(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	subject, body, nonce := r.PostFormValue("subject"), r.PostFormValue("body"), r.PostFormValue("nonce")
	var res inbound.Result
	files, err := formUploads(r)
	if err == nil {
		res, err = s.requesterNew(ctx, v, inbound.Source{Kind: "web", RemoteAddr: s.clientIP(r)}, subject, body, files, nonce)
	}
	if err != nil {
		if status, _, msg := classify(err); status == http.StatusUnprocessableEntity || status == http.StatusBadRequest {
			s.render(w, r, status, "portal_new", PortalNewPage{Page: s.page(r, "New request", "portal-new"),
				Subject: subject, Body: body, Nonce: nonce, Error: msg})
			return
		}
		s.errorPage(w, r, err)
		return
	}
	if res.TicketID == 0 {
		s.flash(r, "Your request was received and is held for review.")
		s.redirect(w, r, "/portal")
		return
	}
	s.flash(r, "Thank you. Your request is ticket #"+strconv.FormatInt(res.TicketID, 10)+"; we will answer by mail.")
	s.redirect(w, r, "/portal/tickets/"+strconv.FormatInt(res.TicketID, 10))
}

func (s *server) portalAttachment(w http.ResponseWriter, r *http.Request) {
	s.attachment(w, r, false)
}
