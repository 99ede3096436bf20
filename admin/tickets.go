package admin

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"ticketd/inbound"
	"ticketd/mailauth"
	"ticketd/signing"
	"ticketd/tickets"
)

const pageSize = 25

func isNotFound(err error) bool { return errors.Is(err, tickets.ErrNotFound) }

// ListForm is the filter form of the tickets list, as the viewer wrote it.
type ListForm struct {
	Status   string
	Priority string
	Assignee string // "", "none", "me" or a user id
	Skill    string
	Q        string
	Sort     string
	Page     int
}

func (f ListForm) values(page int) url.Values {
	v := url.Values{}
	for k, val := range map[string]string{"status": f.Status, "priority": f.Priority, "assignee": f.Assignee,
		"skill": f.Skill, "q": f.Q, "sort": f.Sort} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	return v
}

// URL is the list with these filters on the given page.
func (f ListForm) URL(page int) string {
	if q := f.values(page).Encode(); q != "" {
		return "/tickets?" + q
	}
	return "/tickets"
}

// parseListForm reads the filters from a query; values it does not know
// are dropped, not errors, so an old bookmark still opens.
func parseListForm(q url.Values) ListForm {
	f := ListForm{Q: strings.TrimSpace(q.Get("q")), Skill: strings.TrimSpace(q.Get("skill"))}
	if st, err := tickets.ParseStatus(q.Get("status")); err == nil && q.Get("status") != "" {
		f.Status = string(st)
	}
	if p, err := tickets.ParsePriority(q.Get("priority")); err == nil && q.Get("priority") != "" {
		f.Priority = string(p)
	}
	switch a := q.Get("assignee"); a {
	case "none", "me":
		f.Assignee = a
	default:
		if id, err := strconv.ParseInt(a, 10, 64); err == nil && id > 0 {
			f.Assignee = a
		}
	}
	for _, s := range tickets.Sorts {
		if q.Get("sort") == s {
			f.Sort = s
		}
	}
	f.Page, _ = strconv.Atoi(q.Get("page"))
	f.Page = min(max(f.Page, 1), maxOffset/pageSize+1)
	return f
}

// maxOffset bounds how far into a list a page or an API call may start.
const maxOffset = 1 << 24

func (f ListForm) filter(v *viewer, sc tickets.Scope) tickets.TicketFilter {
	tf := tickets.TicketFilter{Scope: sc, Status: tickets.Status(f.Status), Priority: tickets.Priority(f.Priority),
		Skill: f.Skill, Query: f.Q, Sort: f.Sort, Limit: pageSize, Offset: (f.Page - 1) * pageSize}
	switch f.Assignee {
	case "none":
		tf.Unassigned = true
	case "me":
		tf.AssigneeID = v.User.ID
	case "":
	default:
		tf.AssigneeID, _ = strconv.ParseInt(f.Assignee, 10, 64)
	}
	return tf
}

// StatusTab is one of the counts above the list.
type StatusTab struct {
	Label  string
	Count  int
	URL    string
	Active bool
}

// TicketsPage is the tickets list.
type TicketsPage struct {
	Page
	Form      ListForm
	Tabs      []StatusTab
	Items     []tickets.TicketListItem
	Total     int
	StaffList []tickets.User // whom the assignee menu offers
	Skills    []string
	PageNo    int
	Pages     int
	PrevURL   string
	NextURL   string
	ClearURL  string
}

func (s *server) ticketList(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	form := parseListForm(r.URL.Query())
	filter := form.filter(v, s.scope(v))
	items, total, err := s.st.ListTickets(ctx, filter)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	counts, err := s.st.CountTicketsByStatus(ctx, filter)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	staff, err := s.st.Staff(ctx)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	skills, err := s.st.SkillVocabulary(ctx)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	data := TicketsPage{Page: s.page(r, "Tickets", "tickets"), Form: form, Items: items, Total: total,
		StaffList: staff, Skills: skills, PageNo: form.Page, ClearURL: "/tickets"}
	all := form
	all.Status = ""
	sum := 0
	for _, st := range tickets.Statuses {
		sum += counts[st]
	}
	data.Tabs = append(data.Tabs, StatusTab{Label: "All", Count: sum, URL: all.URL(1), Active: form.Status == ""})
	for _, st := range tickets.Statuses {
		f := form
		f.Status = string(st)
		data.Tabs = append(data.Tabs, StatusTab{Label: st.Label(), Count: counts[st], URL: f.URL(1),
			Active: form.Status == string(st)})
	}
	data.Pages = max(1, (total+pageSize-1)/pageSize)
	if form.Page > data.Pages {
		// A link to a page that is gone since (tickets closed meanwhile).
		s.redirect(w, r, form.URL(data.Pages))
		return
	}
	if form.Page > 1 {
		data.PrevURL = form.URL(form.Page - 1)
	}
	if form.Page < data.Pages {
		data.NextURL = form.URL(form.Page + 1)
	}
	s.render(w, r, http.StatusOK, "tickets", data)
}

// AttachmentLink is an attachment as a page lists it.
type AttachmentLink struct {
	tickets.AttachmentInfo
	URL string
}

// ThreadEntry is one message of a ticket's thread as a page shows it.
type ThreadEntry struct {
	tickets.Message
	Author      string
	Label       string
	Class       string        // inbound, outbound, note or system
	Text        string        // what is new in the message
	FullText    string        // the whole text, when it holds more (quotes, signature)
	HasHTML     bool          // the mail has an HTML part
	HTML        template.HTML // sanitised; set only when the viewer asked for HTML
	Attachments []AttachmentLink
	Trace       *TraceView // staff only: what intake did with the mail; nil when it has no trace
	Sender      string     // staff only: what the sender checks found (SPF, DKIM, DMARC); "" when none ran
	Authentic   bool       // staff only: the From is authenticated
	RawURL      string     // admins only: the mail as stored
}

// TraceView is what intake did with a message's mail, step by step, and
// what followed from it: events, the mails queued for them, triage.
type TraceView struct {
	Steps    []tickets.TraceStep
	Dropped  int
	Followed []inbound.FollowLine
}

// AuditRow is one entry of the audit trail.
type AuditRow struct {
	tickets.AuditEntry
	Actor string
}

// TicketPage is one ticket for staff.
type TicketPage struct {
	Page
	Ticket       tickets.Ticket
	Requester    tickets.User
	Assignee     *tickets.User
	Participants []tickets.User
	NotAdded     tickets.PeopleNotAdded // addresses of the opening mail past MAX_PARTICIPANTS
	Thread       []ThreadEntry
	Audit        []AuditRow
	Decision     *tickets.AIDecisionSummary
	StaffList    []tickets.User // whom the assignee menu offers
	CanAssign    bool           // admins
	CanTake      bool           // a moderator on an unassigned ticket
	ShowHTML     bool
	RemoteImages bool
	TextURL      string
	HTMLURL      string
	ImagesURL    string
	Nonce        string
	Draft        string // a reply refused a moment ago, or a saved reply inserted
	NotesDraft   string // notes refused a moment ago
	SavedReplies []tickets.SavedReply
}

func ticketID(r *http.Request) (int64, error) { return pathID(r, "id") }

// pathID is the positive id in the URL parameter name; ErrNotFound when
// there is none, so a malformed address answers like an unknown one.
func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, name), 10, 64)
	if err != nil || id <= 0 {
		return 0, tickets.ErrNotFound
	}
	return id, nil
}

// users resolves user ids to people, each once.
type users struct {
	st   *tickets.Store
	seen map[int64]tickets.User
}

func (u *users) get(ctx context.Context, id *int64) string {
	if id == nil {
		return ""
	}
	if u.seen == nil {
		u.seen = map[int64]tickets.User{}
	}
	if p, ok := u.seen[*id]; ok {
		return p.Display()
	}
	p, err := u.st.User(ctx, *id)
	if err != nil {
		return "#" + strconv.FormatInt(*id, 10)
	}
	u.seen[*id] = p
	return p.Display()
}

// thread builds the thread a viewer sees: staff see everything, requesters
// only what was not internal.
func (s *server) thread(ctx context.Context, t tickets.Ticket, staff, showHTML, remoteImages bool, attURL func(id int64) string) ([]ThreadEntry, error) {
	msgs, err := s.st.Messages(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	atts, err := s.st.TicketAttachments(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	byMsg := map[int64][]AttachmentLink{}
	for _, a := range atts {
		a.Filename = tickets.PlainName(a.Filename) // no direction override turning "gpj.exe" around
		byMsg[a.MessageID] = append(byMsg[a.MessageID], AttachmentLink{AttachmentInfo: a, URL: attURL(a.ID)})
	}
	var traces map[int64]inbound.TraceReport
	if staff {
		if traces, err = inbound.TicketTraceReports(ctx, s.st, t.ID); err != nil {
			return nil, err
		}
	}
	checks := map[int64][]byte{}
	if staff {
		if checks, err = s.st.SenderChecks(ctx, t.ID); err != nil {
			return nil, err
		}
	}
	people := users{st: s.st}
	var out []ThreadEntry
	for _, m := range msgs {
		if !staff && m.Internal {
			continue
		}
		m.ToAddresses, m.CcAddresses = s.public(m.ToAddresses), s.public(m.CcAddresses)
		e := ThreadEntry{Message: m, Attachments: byMsg[m.ID], HasHTML: strings.TrimSpace(m.HTMLBody) != ""}
		var v mailauth.Verdict
		if b, ok := checks[m.ID]; ok && json.Unmarshal(b, &v) == nil {
			e.Sender, e.Authentic = v.Summary(), v.Authenticated()
		}
		if m.RawMessageID != nil { // a message written on the web has no mail, and no trace
			if r, ok := traces[*m.RawMessageID]; ok {
				e.Trace = &TraceView{Steps: r.Trace.Steps, Dropped: r.Trace.DroppedSteps, Followed: r.Followed()}
			}
		}
		e.Author = m.FromName
		if e.Author == "" {
			e.Author = m.FromAddress
		}
		if e.Author == "" {
			e.Author = people.get(ctx, m.AuthorID)
		}
		switch {
		case m.Kind == tickets.KindNote:
			e.Label, e.Class = "Internal note", "note"
		case m.Kind == tickets.KindSystem:
			e.Label, e.Class = "System", "system"
		case m.Direction == tickets.Inbound && m.Kind == tickets.KindOpening:
			e.Label, e.Class = "Opened the ticket", "inbound"
		case m.Direction == tickets.Inbound:
			e.Label, e.Class = "Wrote", "inbound"
		default:
			e.Label, e.Class = "Replied", "outbound"
		}
		if m.Internal && e.Class != "note" {
			e.Label += " (internal)"
		}
		e.Text = strings.TrimSpace(m.ReplyText)
		full := strings.TrimSpace(m.TextBody)
		if e.Text == "" {
			e.Text = full
		} else if full != e.Text {
			e.FullText = full
		}
		if showHTML && e.HasHTML {
			e.HTML = s.san.HTML(m.HTMLBody, remoteImages, partURLs(e.Attachments))
		}
		out = append(out, e)
	}
	return out, nil
}

// partURLs gives the address of a message's kept attachment by its
// Content-ID, for the images its HTML shows inline (cid: URLs).
func partURLs(atts []AttachmentLink) func(contentID string) string {
	return func(cid string) string {
		for _, a := range atts {
			if a.Kept && a.ContentID != "" && a.ContentID == cid {
				return a.URL
			}
		}
		return ""
	}
}

func (s *server) ticketPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	id, err := ticketID(r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	t, err := s.st.VisibleTicket(ctx, s.scope(v), id, false)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	q := r.URL.Query()
	data := TicketPage{Page: s.page(r, t.Subject, "tickets"), Ticket: t, ShowHTML: q.Get("view") == "html",
		CanAssign: v.admin(), CanTake: !v.admin() && t.AssigneeID == nil && tickets.Permit(s.acting(v), t, tickets.ActionAssign, &v.User) == nil,
		Nonce: newNonce(),
		Draft: s.takeDraft(r, "body", t.ID), NotesDraft: s.takeDraft(r, "notes", t.ID)}
	data.RemoteImages = data.ShowHTML && q.Get("images") == "1"
	base := "/tickets/" + strconv.FormatInt(t.ID, 10)
	data.TextURL, data.HTMLURL, data.ImagesURL = base, base+"?view=html", base+"?view=html&images=1"
	if data.RemoteImages {
		w.Header().Set("Content-Security-Policy", remoteImagesPolicy)
	}
	if data.Requester, err = s.st.User(ctx, t.RequesterID); err != nil {
		s.errorPage(w, r, err)
		return
	}
	if t.AssigneeID != nil {
		a, err := s.st.User(ctx, *t.AssigneeID)
		if err != nil {
			s.errorPage(w, r, err)
			return
		}
		data.Assignee = &a
	}
	if data.Participants, err = s.st.Participants(ctx, t.ID); err != nil {
		s.errorPage(w, r, err)
		return
	}
	if data.NotAdded, err = s.st.PeopleNotAddedTo(ctx, t.ID); err != nil {
		s.errorPage(w, r, err)
		return
	}
	data.Thread, err = s.thread(ctx, t, true, data.ShowHTML, data.RemoteImages, func(aid int64) string {
		return base + "/attachments/" + strconv.FormatInt(aid, 10)
	})
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	for i, e := range data.Thread {
		if v.admin() && e.RawMessageID != nil {
			data.Thread[i].RawURL = base + "/messages/" + strconv.FormatInt(e.ID, 10) + "/raw"
		}
	}
	trail, err := s.st.AuditTrail(ctx, t.ID)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	people := users{st: s.st}
	for _, e := range trail {
		row := AuditRow{AuditEntry: e, Actor: people.get(ctx, e.ActorID)}
		if row.Actor == "" {
			row.Actor = string(e.Channel)
		}
		if e.Action == "status" {
			// The trail says statuses as every other place does.
			row.OldValue, row.NewValue = tickets.Status(e.OldValue).Label(), tickets.Status(e.NewValue).Label()
		}
		data.Audit = append(data.Audit, row)
	}
	if d, err := s.st.LatestAIDecisionSummary(ctx, t.ID); err == nil {
		data.Decision = &d
	} else if !isNotFound(err) {
		s.errorPage(w, r, err)
		return
	}
	if data.CanAssign {
		if data.StaffList, err = s.st.Staff(ctx); err != nil {
			s.errorPage(w, r, err)
			return
		}
	}
	if data.SavedReplies, err = s.st.SavedReplies(ctx); err != nil {
		s.errorPage(w, r, err)
		return
	}
	if id, err := strconv.ParseInt(q.Get("saved_reply"), 10, 64); err == nil && data.Draft == "" {
		// Inserted into the answer box, to be read and changed before it
		// is sent.
		for _, sr := range data.SavedReplies {
			if sr.ID == id {
				data.Draft = sr.Body
			}
		}
	}
	s.render(w, r, http.StatusOK, "ticket", data)
}

// afterAction answers a form post on a ticket: back to the ticket with a
// notice, or the error page for what cannot be shown there.
func (s *server) afterAction(w http.ResponseWriter, r *http.Request, id int64, notice string, err error) {
	back := "/tickets/" + strconv.FormatInt(id, 10)
	if err != nil {
		status, _, msg := classify(err)
		if status == http.StatusUnprocessableEntity || status == http.StatusConflict || status == http.StatusForbidden {
			// The page comes back with what was typed.
			for _, form := range []string{"body", "notes"} {
				if text := r.PostFormValue(form); text != "" {
					s.keepDraft(r, form, id, text)
				}
			}
			s.flash(r, msg)
			s.redirect(w, r, back)
			return
		}
		s.errorPage(w, r, err)
		return
	}
	s.flash(r, notice)
	s.redirect(w, r, back)
}

func changeNotice(c tickets.Change, what string) string {
	if !c.Changed {
		return what + " was already " + show(c.New) + "."
	}
	return what + " changed from " + show(c.Old) + " to " + show(c.New) + "."
}

func show(v string) string {
	if st, err := tickets.ParseStatus(v); err == nil && v != "" {
		return st.Label()
	}
	if v == "" {
		return "nobody"
	}
	return v
}

// ticketChange is the handler of a form that changes one field of a ticket
// with change, and says what became of the field named what.
func (s *server) ticketChange(what string, change func(r *http.Request, v *viewer, id int64) (tickets.Change, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := ticketID(r)
		if err != nil {
			s.errorPage(w, r, err)
			return
		}
		c, err := change(r, viewerFrom(r.Context()), id)
		s.afterAction(w, r, id, changeNotice(c, what), err)
	}
}

func (s *server) ticketAssign(r *http.Request, v *viewer, id int64) (tickets.Change, error) {
	to, _ := strconv.ParseInt(r.PostFormValue("assignee_id"), 10, 64)
	return s.assign(r.Context(), v, tickets.ChannelWeb, id, assignee{id: to}, r.PostFormValue("reason"))
}

func (s *server) ticketStatus(r *http.Request, v *viewer, id int64) (tickets.Change, error) {
	return s.setStatus(r.Context(), v, tickets.ChannelWeb, id, r.PostFormValue("status"))
}

func (s *server) ticketPriority(r *http.Request, v *viewer, id int64) (tickets.Change, error) {
	return s.setPriority(r.Context(), v, tickets.ChannelWeb, id, r.PostFormValue("priority"))
}

func (s *server) ticketNotes(w http.ResponseWriter, r *http.Request) {
	id, err := ticketID(r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	c, err := s.setNotes(r.Context(), viewerFrom(r.Context()), tickets.ChannelWeb, id, r.PostFormValue("notes"))
	notice := "Helpful notes saved."
	if !c.Changed {
		notice = "Helpful notes unchanged."
	}
	s.afterAction(w, r, id, notice, err)
}

func (s *server) ticketReply(w http.ResponseWriter, r *http.Request) {
	id, err := ticketID(r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	internal := r.PostFormValue("internal") == "1"
	created := false
	files, err := formUploads(r)
	if err == nil {
		_, created, err = s.staffMessage(r.Context(), viewerFrom(r.Context()), tickets.ChannelWeb, id,
			r.PostFormValue("body"), files, internal, r.PostFormValue("nonce"))
	}
	notice := "Reply queued to the requester."
	switch {
	case !created:
		notice = "That was sent already."
	case internal:
		notice = "Internal note added."
	}
	s.afterAction(w, r, id, notice, err)
}

// staffAttachment downloads an attachment of a ticket the viewer may see.
func (s *server) staffAttachment(w http.ResponseWriter, r *http.Request) {
	s.attachment(w, r, true)
}

func (s *server) attachment(w http.ResponseWriter, r *http.Request, staff bool) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	id, err := ticketID(r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	aid, err := pathID(r, "aid")
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	sc := s.scope(v)
	if !staff {
		sc = tickets.Scope{ParticipantID: v.User.ID}
	}
	if _, err := s.st.VisibleTicket(ctx, sc, id, false); err != nil {
		s.errorPage(w, r, err)
		return
	}
	a, m, err := s.st.AttachmentContent(ctx, aid)
	if err == nil && (m.TicketID != id || (!staff && m.Internal)) {
		err = tickets.ErrNotFound
	}
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	if a.Data == nil {
		s.errorPage(w, r, &userError{status: http.StatusNotFound, code: "not_found",
			msg: "This attachment was too large to keep apart; it is kept in the original mail."})
		return
	}
	serveAttachment(w, a)
}

// safeTypes keep their type when downloaded (and in <img> of inline
// images); anything else downloads as bytes, so an HTML or SVG attachment
// never runs on this site. Every file downloads, none opens in the page.
var safeTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
	"application/pdf": true, "text/plain": true}

func serveAttachment(w http.ResponseWriter, a tickets.Attachment) {
	ct := strings.ToLower(strings.TrimSpace(strings.Split(a.ContentType, ";")[0]))
	if !safeTypes[ct] {
		ct = "application/octet-stream"
	}
	if ct == "text/plain" {
		ct = "text/plain; charset=utf-8"
	}
	name := tickets.PlainName(a.Filename)
	if name == "" {
		name = "attachment-" + strconv.FormatInt(a.ID, 10)
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(name))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Content-Length", strconv.Itoa(len(a.Data)))
	_, _ = w.Write(a.Data)
}

// public drops ticketd's signed sub-addresses from a list of recipients: a
// reply address is its owner's alone, whoever reads the page.
func (s *server) public(list []string) []string {
	out := list[:0:0]
	for _, a := range list {
		if _, own := signing.TokenFromAddress(s.opts.SupportAddress, tickets.NormalizeEmail(a)); !own {
			out = append(out, a)
		}
	}
	return out
}

// ticketRelease shows a held message to the requester, when
// tickets.Permit allows the viewer ActionRelease on its ticket.
func (s *server) ticketRelease(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	id, err := ticketID(r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	mid, err := pathID(r, "mid")
	if err == nil {
		err = s.withTicket(ctx, v, id, func(tx *tickets.Store, t tickets.Ticket) error {
			if err := tickets.Permit(s.acting(v), t, tickets.ActionRelease, nil); err != nil {
				return err
			}
			err := tx.ReleaseMessage(ctx, t.ID, mid, v.actor(tickets.ChannelWeb))
			if errors.Is(err, tickets.ErrNotHeld) {
				return &userError{status: http.StatusConflict, code: "conflict", msg: "That message is not held (any more)."}
			}
			return err
		})
	}
	s.afterAction(w, r, id, "Released: the requester sees the message now.", err)
}

// messageRaw downloads the mail a message came from, as stored: admins
// only, since it holds what others must not read (signed reply addresses,
// command lines).
func (s *server) messageRaw(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := ticketID(r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	mid, err := pathID(r, "mid")
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	raw, err := s.st.MessageRaw(ctx, id, mid)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", "attachment; filename=message-"+strconv.FormatInt(mid, 10)+".eml")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	_, _ = w.Write(raw)
}
