package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"ticketd/inbound"
	"ticketd/tickets"
)

// The JSON API under /api/v1. A request authenticates with
// "Authorization: Bearer <secret>" (tickets.CreateAPIToken) and acts as the
// token's user with that user's role, under the same rules as the pages.
// Cookies are never read here, so the API needs no CSRF token: a browser
// cannot attach a bearer secret on its own. Errors are
// {"error":{"code":"not_found","message":"..."}} with a stable code.

const maxJSONBody = 1 << 20

func (s *server) apiRoutes(r chi.Router) {
	r.Use(s.apiAuth)
	r.Get("/tickets", s.apiList)
	r.Get("/tickets/{id}", s.apiTicket)
	r.Post("/tickets/{id}/assign", s.apiAssign)
	r.Post("/tickets/{id}/status", s.apiStatus)
	r.Put("/tickets/{id}/notes", s.apiNotes)
	r.Post("/tickets/{id}/reply", s.apiReply)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { s.apiError(w, r, errNoRoute) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.apiError(w, r, &userError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
			msg: r.Method + " is not allowed here."})
	})
}

func (s *server) apiAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ticketd"`)
			s.apiError(w, r, errUnauthorized)
			return
		}
		u, err := s.st.UserByAPIToken(r.Context(), strings.TrimSpace(secret))
		if isNotFound(err) {
			// RFC 6750 3.1: an unknown, revoked or expired token.
			w.Header().Set("WWW-Authenticate", `Bearer realm="ticketd", error="invalid_token"`)
			s.apiError(w, r, &userError{status: http.StatusUnauthorized, code: "unauthorized",
				msg: "This token is unknown or revoked."})
			return
		}
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		v := &viewer{User: u, Auth: authToken}
		next.ServeHTTP(w, r.WithContext(withViewer(r.Context(), v)))
	})
}

type apiErrorBody struct {
	Error apiErrorDetail `json:"error"`
}

type apiErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (s *server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := classify(err)
	if status >= 500 {
		s.log.Error("api request", "err", err, "path", r.URL.Path, "code", code)
	}
	writeJSON(w, status, apiErrorBody{Error: apiErrorDetail{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decodeJSON reads a request body of at most 1 MiB into v, refusing fields v
// does not have.
func decodeJSON(r *http.Request, v any) error { return decodeJSONUpTo(r, v, maxJSONBody) }

// decodeJSONUpTo is decodeJSON for a body of at most max bytes.
func decodeJSONUpTo(r *http.Request, v any, max int64) error {
	body := &io.LimitedReader{R: r.Body, N: max + 1}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooLarge *http.MaxBytesError
	if body.N == 0 || errors.As(err, &tooLarge) {
		return &userError{status: http.StatusRequestEntityTooLarge, code: "too_large",
			msg: fmt.Sprintf("The body is larger than this call takes (%d MB).", max>>20)}
	}
	if err != nil {
		return badRequest("The body is not the JSON this call takes: %s.", err)
	}
	if dec.More() {
		return badRequest("The body holds more than one JSON value.")
	}
	return nil
}

type apiUser struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

type apiTicket struct {
	ID               int64      `json:"id"`
	Subject          string     `json:"subject"`
	Status           string     `json:"status"`
	StatusLabel      string     `json:"status_label"`
	Priority         string     `json:"priority"`
	Requester        apiUser    `json:"requester"`
	Assignee         *apiUser   `json:"assignee"`
	Skills           []string   `json:"skills"`
	Category         string     `json:"category"`
	Language         string     `json:"language"`
	Summary          string     `json:"summary"`
	AutoKind         string     `json:"auto_kind"`
	LinkedTicketID   *int64     `json:"linked_ticket_id"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
	TriagedAt        *time.Time `json:"triaged_at"`
	AssignedAt       *time.Time `json:"assigned_at"`
	CompletedAt      *time.Time `json:"completed_at"`
	URL              string     `json:"url"`
	HelpfulNotes     *string    `json:"helpful_notes,omitempty"`     // staff only
	AssignmentReason *string    `json:"assignment_reason,omitempty"` // staff only
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *server) apiTicketOf(t tickets.Ticket, requester apiUser, assignee *apiUser, staff bool) apiTicket {
	out := apiTicket{ID: t.ID, Subject: t.Subject, Status: string(t.Status), StatusLabel: t.Status.Label(),
		Priority: string(t.Priority), Requester: requester, Assignee: assignee, Skills: nonNil(t.Skills),
		Category: t.Category, Language: t.Language, Summary: t.Summary, AutoKind: t.AutoKind,
		LinkedTicketID: t.LinkedTicketID, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, TriagedAt: t.TriagedAt,
		AssignedAt: t.AssignedAt, CompletedAt: t.CompletedAt}
	if staff {
		out.URL = s.link("/tickets/" + strconv.FormatInt(t.ID, 10))
		notes, reason := t.HelpfulNotes, t.AssignmentReason
		out.HelpfulNotes, out.AssignmentReason = &notes, &reason
	} else {
		out.URL = s.link("/portal/tickets/" + strconv.FormatInt(t.ID, 10))
	}
	return out
}

type apiList struct {
	Tickets []apiTicket    `json:"tickets"`
	Total   int            `json:"total"`
	Counts  map[string]int `json:"counts"`
	Limit   int            `json:"limit"`
	Offset  int            `json:"offset"`
}

// apiList is GET /tickets with the list page's filters: status, priority,
// assignee (an id, "me" or "none"), skill, q, sort, limit (at most 200) and
// offset.
func (s *server) apiList(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	q := r.URL.Query()
	// The pages drop filters they do not know; the API says so.
	if val := q.Get("status"); val != "" {
		if _, err := tickets.ParseStatus(val); err != nil {
			s.apiError(w, r, invalid("%s", err))
			return
		}
	}
	if val := q.Get("priority"); val != "" {
		if _, err := tickets.ParsePriority(val); err != nil {
			s.apiError(w, r, invalid("%s", err))
			return
		}
	}
	form := parseListForm(q)
	if val := q.Get("assignee"); val != "" && form.Assignee != val {
		s.apiError(w, r, invalid("assignee is none, me or a user's id, not %q", val))
		return
	}
	if val := q.Get("sort"); val != "" && form.Sort != val {
		s.apiError(w, r, invalid("sort is one of %s, not %q", strings.Join(tickets.Sorts, ", "), val))
		return
	}
	f := form.filter(v, s.scope(v))
	f.Limit, f.Offset = 50, 0
	for _, p := range []struct {
		name     string
		to       *int
		min, max int
	}{{"limit", &f.Limit, 1, 200}, {"offset", &f.Offset, 0, maxOffset}} {
		val := q.Get(p.name)
		if val == "" {
			continue
		}
		n, err := strconv.Atoi(val)
		if err != nil || n < p.min || n > p.max {
			s.apiError(w, r, invalid("%s is a whole number from %d to %d, not %q", p.name, p.min, p.max, val))
			return
		}
		*p.to = n
	}
	items, total, err := s.st.ListTickets(ctx, f)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	counts, err := s.st.CountTicketsByStatus(ctx, f)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := apiList{Tickets: []apiTicket{}, Total: total, Counts: map[string]int{}, Limit: f.Limit, Offset: f.Offset}
	for st, n := range counts {
		out.Counts[string(st)] = n
	}
	for _, it := range items {
		var assignee *apiUser
		if it.AssigneeID != nil {
			assignee = &apiUser{ID: *it.AssigneeID, Email: it.AssigneeEmail, Name: it.AssigneeName}
		}
		out.Tickets = append(out.Tickets, s.apiTicketOf(it.Ticket,
			apiUser{ID: it.RequesterID, Email: it.RequesterEmail, Name: it.RequesterName}, assignee, v.staff()))
	}
	writeJSON(w, http.StatusOK, out)
}

type apiAttachment struct {
	ID          int64  `json:"id"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Kept        bool   `json:"kept"`
	URL         string `json:"url,omitempty"`
}

type apiMessage struct {
	ID          int64           `json:"id"`
	Direction   string          `json:"direction"`
	Kind        string          `json:"kind"`
	Internal    bool            `json:"internal"`
	AuthorID    *int64          `json:"author_id"`
	MessageID   string          `json:"message_id"`
	From        apiAddress      `json:"from"`
	To          []string        `json:"to"`
	Cc          []string        `json:"cc"`
	Subject     string          `json:"subject"`
	Text        string          `json:"text"`
	Reply       string          `json:"reply"`
	HTML        string          `json:"html"` // sanitised, remote images removed
	AutoKind    string          `json:"auto_kind"`
	CreatedAt   time.Time       `json:"created_at"`
	Attachments []apiAttachment `json:"attachments"`
}

type apiAddress struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

type apiTriage struct {
	Summary          string     `json:"summary"`
	HelpfulNotes     string     `json:"helpful_notes"`
	FirstResponse    string     `json:"first_response"`
	Priority         string     `json:"priority"`
	Skills           []string   `json:"skills"`
	SuggestedSkills  []string   `json:"suggested_skills"`
	Category         string     `json:"category"`
	Language         string     `json:"language"`
	AssignmentReason string     `json:"assignment_reason"`
	Provider         string     `json:"provider"`
	Model            string     `json:"model"`
	DecidedAt        *time.Time `json:"decided_at"`
}

type apiAudit struct {
	ID        int64     `json:"id"`
	ActorID   *int64    `json:"actor_id"`
	Actor     string    `json:"actor"`
	Channel   string    `json:"channel"`
	Action    string    `json:"action"`
	Old       string    `json:"old"`
	New       string    `json:"new"`
	Detail    string    `json:"detail"`
	CreatedAt time.Time `json:"created_at"`
}

type apiTicketDetail struct {
	Ticket        apiTicket    `json:"ticket"`
	FirstResponse string       `json:"first_response"`
	Messages      []apiMessage `json:"messages"`
	Triage        *apiTriage   `json:"triage,omitempty"` // staff only
	Audit         []apiAudit   `json:"audit,omitempty"`  // staff only
}

func (s *server) apiTicketID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := ticketID(r)
	if err != nil {
		s.apiError(w, r, err)
		return 0, false
	}
	return id, true
}

// apiDetail builds GET /tickets/{id}: the ticket, its thread (internal
// notes for staff only), and for staff the triage and the audit trail.
func (s *server) apiDetail(r *http.Request, v *viewer, id int64) (apiTicketDetail, error) {
	ctx := r.Context()
	staff := v.staff()
	t, err := s.st.VisibleTicket(ctx, s.scope(v), id, false)
	if err != nil {
		return apiTicketDetail{}, err
	}
	people := users{st: s.st}
	req, err := s.st.User(ctx, t.RequesterID)
	if err != nil {
		return apiTicketDetail{}, err
	}
	var assignee *apiUser
	if t.AssigneeID != nil {
		a, err := s.st.User(ctx, *t.AssigneeID)
		if err != nil {
			return apiTicketDetail{}, err
		}
		assignee = &apiUser{ID: a.ID, Email: a.Email, Name: a.Name}
	}
	out := apiTicketDetail{Ticket: s.apiTicketOf(t, apiUser{ID: req.ID, Email: req.Email, Name: req.Name}, assignee, staff),
		FirstResponse: t.FirstResponse, Messages: []apiMessage{}}
	msgs, err := s.st.Messages(ctx, t.ID)
	if err != nil {
		return apiTicketDetail{}, err
	}
	atts, err := s.st.TicketAttachments(ctx, t.ID)
	if err != nil {
		return apiTicketDetail{}, err
	}
	base := "/tickets/"
	if !staff {
		base = "/portal/tickets/"
	}
	for _, m := range msgs {
		if m.Internal && !staff {
			continue
		}
		am := apiMessage{ID: m.ID, Direction: string(m.Direction), Kind: string(m.Kind), Internal: m.Internal,
			AuthorID: m.AuthorID, MessageID: m.MessageID, From: apiAddress{Name: m.FromName, Address: m.FromAddress},
			To: nonNil(s.public(m.ToAddresses)), Cc: nonNil(s.public(m.CcAddresses)), Subject: m.Subject, Text: m.TextBody,
			Reply: m.ReplyText, AutoKind: m.AutoKind, CreatedAt: m.CreatedAt, Attachments: []apiAttachment{}}
		var links []AttachmentLink
		for _, a := range atts {
			if a.MessageID != m.ID {
				continue
			}
			aa := apiAttachment{ID: a.ID, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, Kept: a.Kept}
			if a.Kept {
				aa.URL = s.link(base + strconv.FormatInt(t.ID, 10) + "/attachments/" + strconv.FormatInt(a.ID, 10))
			}
			am.Attachments = append(am.Attachments, aa)
			links = append(links, AttachmentLink{AttachmentInfo: a, URL: aa.URL})
		}
		if m.HTMLBody != "" {
			am.HTML = string(s.san.HTML(m.HTMLBody, false, partURLs(links)))
		}
		out.Messages = append(out.Messages, am)
	}
	if !staff {
		return out, nil
	}
	tr := &apiTriage{Summary: t.Summary, HelpfulNotes: t.HelpfulNotes, FirstResponse: t.FirstResponse,
		Priority: string(t.Priority), Skills: nonNil(t.Skills), SuggestedSkills: nonNil(t.SuggestedSkills),
		Category: t.Category, Language: t.Language, AssignmentReason: t.AssignmentReason}
	if d, err := s.st.LatestAIDecisionSummary(ctx, t.ID); err == nil {
		tr.Provider, tr.Model, tr.DecidedAt = d.Provider, d.Model, &d.CreatedAt
	} else if !isNotFound(err) {
		return apiTicketDetail{}, err
	}
	out.Triage = tr
	trail, err := s.st.AuditTrail(ctx, t.ID)
	if err != nil {
		return apiTicketDetail{}, err
	}
	out.Audit = []apiAudit{}
	for _, e := range trail {
		out.Audit = append(out.Audit, apiAudit{ID: e.ID, ActorID: e.ActorID, Actor: people.get(ctx, e.ActorID),
			Channel: string(e.Channel), Action: e.Action, Old: e.OldValue, New: e.NewValue, Detail: e.Detail,
			CreatedAt: e.CreatedAt})
	}
	return out, nil
}

func (s *server) apiTicket(w http.ResponseWriter, r *http.Request) {
	id, ok := s.apiTicketID(w, r)
	if !ok {
		return
	}
	out, err := s.apiDetail(r, viewerFrom(r.Context()), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type apiChange struct {
	Field   string `json:"field"`
	Old     string `json:"old"`
	New     string `json:"new"`
	Changed bool   `json:"changed"`
}

type apiChangeResult struct {
	Change apiChange `json:"change"`
	Ticket apiTicket `json:"ticket"`
}

// answerChange writes a change and the ticket as it is now.
func (s *server) answerChange(w http.ResponseWriter, r *http.Request, id int64, c tickets.Change, err error) {
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	d, err := s.apiDetail(r, viewerFrom(r.Context()), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiChangeResult{Change: apiChange{Field: c.Field, Old: c.Old, New: c.New,
		Changed: c.Changed}, Ticket: d.Ticket})
}

type assignRequest struct {
	AssigneeID    int64  `json:"assignee_id"`
	AssigneeEmail string `json:"assignee_email"`
	Reason        string `json:"reason"`
}

// apiAssign is POST /tickets/{id}/assign {"assignee_id": 3} or
// {"assignee_email": "mod@example.com"}, with an optional "reason".
func (s *server) apiAssign(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, ok := s.apiTicketID(w, r)
	if !ok {
		return
	}
	var req assignRequest
	if err := decodeJSON(r, &req); err != nil {
		s.apiError(w, r, err)
		return
	}
	c, err := s.assign(ctx, viewerFrom(ctx), tickets.ChannelAPI, id,
		assignee{id: req.AssigneeID, email: req.AssigneeEmail}, req.Reason)
	s.answerChange(w, r, id, c, err)
}

// apiStatus is POST /tickets/{id}/status {"status": "completed"}; the
// aliases of mail commands work too ("done", "in-progress").
func (s *server) apiStatus(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, ok := s.apiTicketID(w, r)
	if !ok {
		return
	}
	var req struct {
		Status string `json:"status"`
	}
	if err := decodeJSON(r, &req); err != nil {
		s.apiError(w, r, err)
		return
	}
	c, err := s.setStatus(ctx, viewerFrom(ctx), tickets.ChannelAPI, id, req.Status)
	s.answerChange(w, r, id, c, err)
}

// apiNotes is PUT /tickets/{id}/notes {"notes": "..."}, replacing the
// helpful notes.
func (s *server) apiNotes(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, ok := s.apiTicketID(w, r)
	if !ok {
		return
	}
	var req struct {
		Notes *string `json:"notes"`
	}
	if err := decodeJSON(r, &req); err != nil {
		s.apiError(w, r, err)
		return
	}
	if req.Notes == nil {
		s.apiError(w, r, badRequest(`The body needs "notes".`))
		return
	}
	c, err := s.setNotes(ctx, viewerFrom(ctx), tickets.ChannelAPI, id, *req.Notes)
	s.answerChange(w, r, id, c, err)
}

type replyRequest struct {
	Body     string    `json:"body"`
	Internal bool      `json:"internal"`
	Files    []apiFile `json:"files"`
}

// apiFile is a file sent with a reply: its bytes in base64.
type apiFile struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Data        []byte `json:"data"`
}

// maxFilesJSON bounds a reply's body: the files in base64, and the text.
const maxFilesJSON = maxUploadBytes*4/3 + maxJSONBody

// uploads checks the files of a reply against the portal's limits.
func (req replyRequest) uploads() ([]upload, error) {
	if len(req.Files) > maxUploads {
		return nil, invalid("Attach at most %d files.", maxUploads)
	}
	var out []upload
	total := 0
	for _, f := range req.Files {
		if total += len(f.Data); total > maxUploadBytes {
			return nil, invalid("The files may add up to %d MB.", maxUploadBytes>>20)
		}
		out = append(out, upload{name: uploadName(f.Name), contentType: uploadType(f.ContentType), data: f.Data})
	}
	return out, nil
}

type replyResult struct {
	TicketID  int64  `json:"ticket_id"`
	MessageID int64  `json:"message_id"`
	RFCID     string `json:"rfc_message_id,omitempty"`
	Internal  bool   `json:"internal"`
	Duplicate bool   `json:"duplicate"`
	Held      bool   `json:"held,omitempty"`
}

// apiReply is POST /tickets/{id}/reply {"body": "...", "internal": false,
// "files": [{"name": "...", "content_type": "...", "data": "<base64>"}]}.
// Staff write a reply to the requester (queued at once) or, with internal,
// a note; a requester's reply goes through intake like their mail. Files
// follow the portal's limits (10, 15 MB in all). An Idempotency-Key header
// makes a retried call store the message once.
func (s *server) apiReply(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	id, ok := s.apiTicketID(w, r)
	if !ok {
		return
	}
	var req replyRequest
	if err := decodeJSONUpTo(r, &req, maxFilesJSON); err != nil {
		s.apiError(w, r, err)
		return
	}
	files, err := req.uploads()
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key != "" && !nonceRE.MatchString(key) {
		s.apiError(w, r, badRequest("Idempotency-Key must be 8 to 64 letters, digits, - or _."))
		return
	}
	if v.staff() {
		m, created, err := s.staffMessage(ctx, v, tickets.ChannelAPI, id, req.Body, files, req.Internal, key)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		status := http.StatusCreated
		if !created {
			status = http.StatusOK
		}
		writeJSON(w, status, replyResult{TicketID: m.TicketID, MessageID: m.ID, RFCID: m.MessageID,
			Internal: m.Internal, Duplicate: !created})
		return
	}
	if req.Internal {
		// Visible tickets only: someone else's ticket stays a 404.
		if _, err := s.st.VisibleTicket(ctx, s.scope(v), id, false); err != nil {
			s.apiError(w, r, err)
			return
		}
		s.apiError(w, r, errForbidden)
		return
	}
	res, err := s.requesterReply(ctx, v, inbound.Source{Kind: "api", RemoteAddr: s.clientIP(r)}, id, req.Body, files, key)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	status := http.StatusCreated
	if res.Duplicate {
		status = http.StatusOK
	}
	writeJSON(w, status, replyResult{TicketID: res.TicketID, MessageID: res.MessageID, Duplicate: res.Duplicate,
		Held: res.Quarantined})
}
