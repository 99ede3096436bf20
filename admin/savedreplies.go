package admin

import (
	"net/http"
	"strconv"
	"strings"

	"ticketd/tickets"
)

// SavedReplyForm is a saved reply as its form edits it.
type SavedReplyForm struct {
	ID       int64
	Title    string
	Body     string
	Skills   string
	Terms    string // one per line
	Language string
}

func savedReplyForm(r tickets.SavedReply) SavedReplyForm {
	return SavedReplyForm{ID: r.ID, Title: r.Title, Body: r.Body, Skills: strings.Join(r.Skills, ", "),
		Terms: strings.Join(r.Terms, "\n"), Language: r.Language}
}

func (f SavedReplyForm) new() tickets.NewSavedReply {
	return tickets.NewSavedReply{Title: f.Title, Body: f.Body, Skills: tickets.SplitSkills(f.Skills),
		Terms: tickets.SplitTerms(f.Terms), Language: f.Language}
}

func savedReplyFromPost(r *http.Request) SavedReplyForm {
	return SavedReplyForm{Title: r.PostFormValue("title"), Body: r.PostFormValue("body"), Skills: r.PostFormValue("skills"),
		Terms: r.PostFormValue("terms"), Language: r.PostFormValue("language")}
}

// SavedRepliesPage lists the saved replies, with a form for a new one or
// for the one being edited.
type SavedRepliesPage struct {
	Page
	Replies []tickets.SavedReply
	Form    SavedReplyForm
	Error   string
}

func (s *server) renderSavedReplies(w http.ResponseWriter, r *http.Request, status int, form SavedReplyForm, msg string) {
	replies, err := s.st.SavedReplies(r.Context())
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.render(w, r, status, "saved_replies", SavedRepliesPage{Page: s.page(r, "Saved replies", "saved-replies"),
		Replies: replies, Form: form, Error: msg})
}

func (s *server) savedReplyList(w http.ResponseWriter, r *http.Request) {
	var form SavedReplyForm
	if id, err := strconv.ParseInt(r.URL.Query().Get("edit"), 10, 64); err == nil {
		sr, err := s.st.SavedReply(r.Context(), id)
		if err != nil {
			s.errorPage(w, r, err)
			return
		}
		form = savedReplyForm(sr)
	}
	s.renderSavedReplies(w, r, http.StatusOK, form, "")
}

// savedReplySave creates a saved reply, or replaces one when the form
// names it.
func (s *server) savedReplySave(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	form := savedReplyFromPost(r)
	var (
		sr  tickets.SavedReply
		err error
	)
	if id, perr := strconv.ParseInt(r.PostFormValue("id"), 10, 64); perr == nil && id > 0 {
		form.ID = id
		sr, err = s.st.UpdateSavedReply(ctx, id, form.new())
	} else {
		sr, err = s.st.CreateSavedReply(ctx, form.new(), &v.User.ID)
	}
	if err != nil {
		if status, _, msg := classify(err); status == http.StatusUnprocessableEntity {
			s.renderSavedReplies(w, r, status, form, msg)
			return
		}
		s.errorPage(w, r, err)
		return
	}
	s.log.Info("saved reply saved", "saved_reply_id", sr.ID, "by", v.User.ID)
	s.flash(r, "Saved “"+sr.Title+"”.")
	s.redirect(w, r, "/saved-replies")
}

func (s *server) savedReplyDelete(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
	if err != nil {
		s.errorPage(w, r, tickets.ErrNotFound)
		return
	}
	if err := s.st.DeleteSavedReply(r.Context(), id); err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.flash(r, "Deleted the saved reply.")
	s.redirect(w, r, "/saved-replies")
}
