package admin

import (
	"net/http"
	"slices"
	"strings"

	"ticketd/tickets"
	"ticketd/workflows/triage"
)

// SkillRow is one skill of the desk: its definition, who holds it, and
// whether triage knows words for it of its own.
type SkillRow struct {
	Name        string
	Description string
	Terms       string // one per line, as the form edits them
	Defined     bool
	Holders     []string
	BuiltIn     bool
}

// SkillsPage lists the desk's skills, for admins to describe them and give
// them the words tickets use when they need them.
type SkillsPage struct {
	Page
	Skills []SkillRow
	Form   SkillRow
	Error  string
}

func (s *server) renderSkills(w http.ResponseWriter, r *http.Request, status int, form SkillRow, msg string) {
	ctx := r.Context()
	defs, err := s.st.SkillDefinitions(ctx)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	staff, err := s.st.Staff(ctx)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	rows := map[string]*SkillRow{}
	row := func(name string) *SkillRow {
		if rows[name] == nil {
			rows[name] = &SkillRow{Name: name, BuiltIn: triage.KnownSkill(name)}
		}
		return rows[name]
	}
	for _, d := range defs {
		sr := row(d.Name)
		sr.Description, sr.Terms, sr.Defined = d.Description, strings.Join(d.Terms, "\n"), true
	}
	for _, u := range staff {
		for _, sk := range u.Skills {
			sr := row(sk)
			sr.Holders = append(sr.Holders, u.Display())
		}
	}
	page := SkillsPage{Page: s.page(r, "Skills", "skills"), Form: form, Error: msg}
	for _, sr := range rows {
		page.Skills = append(page.Skills, *sr)
	}
	slices.SortFunc(page.Skills, func(a, b SkillRow) int { return strings.Compare(a.Name, b.Name) })
	s.render(w, r, status, "skills", page)
}

func (s *server) skillList(w http.ResponseWriter, r *http.Request) {
	s.renderSkills(w, r, http.StatusOK, SkillRow{}, "")
}

// skillSave creates or replaces a skill's definition.
func (s *server) skillSave(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form := SkillRow{Name: strings.TrimSpace(r.PostFormValue("name")), Description: r.PostFormValue("description"),
		Terms: r.PostFormValue("terms")}
	v := viewerFrom(ctx)
	d, err := s.st.SaveSkillDefinition(ctx, tickets.SkillDefinition{Name: form.Name, Description: form.Description,
		Terms: tickets.SplitTerms(form.Terms)}, &v.User.ID)
	if err != nil {
		if status, _, msg := classify(err); status == http.StatusUnprocessableEntity {
			s.renderSkills(w, r, status, form, msg)
			return
		}
		s.errorPage(w, r, err)
		return
	}
	s.log.Info("skill defined", "skill", d.Name, "terms", len(d.Terms), "by", v.User.ID)
	s.flash(r, "Saved the skill "+d.Name+".")
	s.redirect(w, r, "/skills")
}

// skillDelete removes a skill's definition; whoever holds the skill keeps
// it.
func (s *server) skillDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PostFormValue("name")
	if err := s.st.DeleteSkillDefinition(r.Context(), name); err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.flash(r, "Removed the definition of "+name+".")
	s.redirect(w, r, "/skills")
}
