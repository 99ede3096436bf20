package admin

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/justinas/nosurf"

	"ticketd/tickets"
)

// pageNames are the templates New requires, each templates/<name>.html
// defining "title" and "content" for the shared layout.
var pageNames = []string{
	"error", "signin",
	"tickets", "ticket", "quarantine", "quarantine_show", "people", "tokens", "skills", "saved_replies",
	"portal_signin", "portal_sent", "portal_login", "portal_home", "portal_ticket", "portal_new",
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format("2006-01-02 15:04")
	},
	"whenp": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.Local().Format("2006-01-02 15:04")
	},
	"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ago":  func(t time.Time) string { return ago(time.Since(t)) },
	"join": strings.Join,
	"size": func(n int64) string {
		switch {
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
	"deref": func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	},
	"int64":      func(n int) int64 { return int64(n) },
	"statuses":   func() []tickets.Status { return tickets.Statuses },
	"priorities": func() []tickets.Priority { return tickets.Priorities },
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

func parseTemplates(fsys fs.FS) (map[string]*template.Template, error) {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		file := "templates/" + name + ".html"
		if _, err := fs.Stat(fsys, file); err != nil {
			return nil, fmt.Errorf("admin: template %s: %w", file, err)
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(fsys, "templates/layout.html", file)
		if err != nil {
			return nil, fmt.Errorf("admin: parse template %s: %w", file, err)
		}
		for _, block := range []string{"layout", "title", "content"} {
			if t.Lookup(block) == nil {
				return nil, fmt.Errorf("admin: template %s defines no %q", file, block)
			}
		}
		pages[name] = t
	}
	return pages, nil
}

// Page is what the layout of every page needs.
type Page struct {
	Title  string
	Viewer *tickets.User // nil when nobody is signed in
	Staff  bool          // signed in with a password as moderator or admin
	Admin  bool
	CSRF   string // the token every form carries
	Flash  string // a one-time notice after a redirect
	Nav    string // the section to highlight
}

func (s *server) page(r *http.Request, title, nav string) Page {
	p := Page{Title: title, CSRF: nosurf.Token(r), Nav: nav}
	if v := viewerFrom(r.Context()); v != nil {
		u := v.User
		p.Viewer = &u
		p.Staff = v.staff()
		p.Admin = v.admin()
		p.Flash = s.sessions.PopString(r.Context(), "flash")
	}
	return p
}

func (s *server) flash(r *http.Request, msg string) { s.sessions.Put(r.Context(), "flash", msg) }

// keepDraft holds what someone typed into a form that was refused, for the
// page they are sent back to (takeDraft), so that fixing the mistake does
// not mean typing it all again.
func (s *server) keepDraft(r *http.Request, form string, id int64, text string) {
	s.sessions.Put(r.Context(), draftKey(form, id), text)
}

// takeDraft returns, once, the text kept for a form; "" when there is none.
func (s *server) takeDraft(r *http.Request, form string, id int64) string {
	return s.sessions.PopString(r.Context(), draftKey(form, id))
}

func draftKey(form string, id int64) string { return "draft:" + form + ":" + strconv.FormatInt(id, 10) }

// render executes a page into a buffer first, so a template error becomes a
// clean 500 instead of half a page.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	t, ok := s.pages[name]
	if !ok {
		s.log.Error("render: no such page", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// ErrorPage shows what went wrong.
type ErrorPage struct {
	Page
	Status  int
	Message string
}

func (s *server) errorPage(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := classify(err)
	if status >= 500 {
		s.log.Error("web request", "err", err, "path", r.URL.Path, "code", code)
	}
	s.render(w, r, status, "error", ErrorPage{Page: s.page(r, http.StatusText(status), ""), Status: status, Message: msg})
}

func (s *server) redirect(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, path, http.StatusSeeOther)
}
