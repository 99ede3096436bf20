package admin

import (
	"net/http"
	"strconv"

	"ticketd/inbound/mailparse"
	"ticketd/tickets"
)

// QuarantinePage lists automatic mail that matched no ticket.
type QuarantinePage struct {
	Page
	Items    []tickets.HeldMail
	Total    int
	Released bool // showing the mail already opened as tickets
	PageNo   int
	Pages    int
	PrevURL  string
	NextURL  string
}

func (s *server) quarantineList(w http.ResponseWriter, r *http.Request) {
	released := r.URL.Query().Get("released") == "1"
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	items, total, err := s.st.HeldMails(r.Context(), released, pageSize, (page-1)*pageSize)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	data := QuarantinePage{Page: s.page(r, "Quarantine", "quarantine"), Items: items, Total: total,
		Released: released, PageNo: page, Pages: max(1, (total+pageSize-1)/pageSize)}
	link := func(p int) string {
		u := "/quarantine?page=" + strconv.Itoa(p)
		if released {
			u += "&released=1"
		}
		return u
	}
	if page > 1 {
		data.PrevURL = link(page - 1)
	}
	if page < data.Pages {
		data.NextURL = link(page + 1)
	}
	s.render(w, r, http.StatusOK, "quarantine", data)
}

// QuarantineShowPage is one held mail, read by the same parser as intake and
// shown as plain text.
type QuarantineShowPage struct {
	Page
	Held tickets.HeldMail
	Mail *mailparse.Message
}

func (s *server) quarantineShow(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	h, raw, err := s.st.HeldMailRaw(r.Context(), id, false)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	m := mailparse.Parse(raw, mailparse.Options{MaxAttachmentBytes: 1})
	s.render(w, r, http.StatusOK, "quarantine_show", QuarantineShowPage{
		Page: s.page(r, "Held mail #"+strconv.FormatInt(id, 10), "quarantine"), Held: h, Mail: m})
}

// quarantineRelease opens a held mail as a ticket. The raw mail stays where
// it is; the quarantine row is marked released with who did it and which
// ticket it became.
func (s *server) quarantineRelease(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	id, err := pathID(r, "id")
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	_, raw, err := s.st.HeldMailRaw(ctx, id, false)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	m := mailparse.Parse(raw, mailparse.Options{MaxAttachmentBytes: 1})
	rm := tickets.ReleasedMail{FromAddress: m.From.Address, FromName: m.From.Name, Subject: m.Subject,
		Text: m.Text, HTML: m.HTML, MessageID: m.MessageID}
	for _, a := range m.To {
		rm.To = append(rm.To, a.Address)
	}
	for _, a := range m.Cc {
		rm.Cc = append(rm.Cc, a.Address)
	}
	var t tickets.Ticket
	err = s.st.InTx(ctx, func(tx *tickets.Store) error {
		var err error
		t, err = tx.ReleaseHeldMail(ctx, id, rm, v.actor(tickets.ChannelWeb))
		return err
	})
	if err != nil {
		status, _, msg := classify(err)
		if status == http.StatusConflict {
			s.flash(r, msg)
			s.redirect(w, r, "/quarantine/"+strconv.FormatInt(id, 10))
			return
		}
		s.errorPage(w, r, err)
		return
	}
	s.log.Info("quarantined mail opened as a ticket", "ticket_id", t.ID, "quarantine_id", id, "user_id", v.User.ID)
	s.flash(r, "Opened as ticket #"+strconv.FormatInt(t.ID, 10)+".")
	s.redirect(w, r, "/tickets/"+strconv.FormatInt(t.ID, 10))
}
