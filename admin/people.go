package admin

import (
	"errors"
	"net/http"
	"net/mail"
	"strings"

	"ticketd/tickets"
)

// PersonForm is the form that adds someone to the staff.
type PersonForm struct {
	Email  string
	Name   string
	Role   string
	Skills string
}

// PeoplePage lists moderators and admins with their open load, and the
// addresses marked bouncing.
type PeoplePage struct {
	Page
	Loads    []tickets.StaffLoad
	Form     PersonForm
	Error    string
	Roles    []tickets.Role
	Bouncing []tickets.BouncingAddress
}

var staffRoles = []tickets.Role{tickets.RoleModerator, tickets.RoleAdmin}

func (s *server) renderPeople(w http.ResponseWriter, r *http.Request, status int, form PersonForm, msg string) {
	loads, err := s.st.StaffLoads(r.Context())
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	bouncing, err := s.st.BouncingAddresses(r.Context())
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	if form.Role == "" {
		form.Role = string(tickets.RoleModerator)
	}
	s.render(w, r, status, "people", PeoplePage{Page: s.page(r, "People", "people"), Loads: loads,
		Form: form, Error: msg, Roles: staffRoles, Bouncing: bouncing})
}

func (s *server) peopleList(w http.ResponseWriter, r *http.Request) {
	s.renderPeople(w, r, http.StatusOK, PersonForm{}, "")
}

// peopleCreate adds a moderator or admin. An address ticketd knows as a
// requester is promoted, keeping its tickets.
func (s *server) peopleCreate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form := PersonForm{Email: strings.TrimSpace(r.PostFormValue("email")), Name: strings.TrimSpace(r.PostFormValue("name")),
		Role: r.PostFormValue("role"), Skills: r.PostFormValue("skills")}
	fail := func(msg string) { s.renderPeople(w, r, http.StatusUnprocessableEntity, form, msg) }
	addr, err := mail.ParseAddress(form.Email)
	if err != nil || addr.Address != form.Email {
		fail("Enter an email address such as ann@example.com.")
		return
	}
	role, err := tickets.ParseRole(form.Role)
	if err != nil || !role.IsStaff() {
		fail("Choose moderator or admin.")
		return
	}
	hash, err := HashPassword(r.PostFormValue("password"))
	if err != nil {
		fail(strings.TrimPrefix(err.Error(), "admin: ") + ".")
		return
	}
	skills := tickets.SplitSkills(form.Skills)
	var created tickets.User
	err = s.st.InTx(ctx, func(tx *tickets.Store) error {
		u, err := tx.UserByEmail(ctx, form.Email)
		switch {
		case errors.Is(err, tickets.ErrNotFound):
			created, err = tx.CreateUser(ctx, tickets.NewUser{Email: form.Email, Name: form.Name, Role: role,
				Skills: skills, PasswordHash: &hash})
			return err
		case err != nil:
			return err
		case u.Role.IsStaff():
			return invalid("%s is on the staff already; change them in the list below.", u.Email)
		}
		upd := tickets.UserUpdate{Role: &role, Skills: skills, PasswordHash: &hash}
		if form.Name != "" {
			upd.Name = &form.Name
		}
		active := true
		upd.Active = &active
		created, err = tx.UpdateUser(ctx, u.ID, upd)
		return err
	})
	if err != nil {
		if status, _, msg := classify(err); status == http.StatusUnprocessableEntity {
			fail(msg)
			return
		}
		s.errorPage(w, r, err)
		return
	}
	s.log.Info("staff added", "user_id", created.ID, "role", string(role), "by", viewerFrom(ctx).User.ID)
	s.flash(r, "Added "+created.Email+" as "+string(role)+".")
	s.redirect(w, r, "/people")
}

// peopleUpdate changes someone's name, role, skills, password or whether
// they are active. Admins cannot demote or deactivate themselves, so the
// last admin cannot lock everyone out by accident.
func (s *server) peopleUpdate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	id, err := pathID(r, "id")
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	fail := func(msg string) { s.renderPeople(w, r, http.StatusUnprocessableEntity, PersonForm{}, msg) }
	u, err := s.st.User(ctx, id)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	var upd tickets.UserUpdate
	name := strings.TrimSpace(r.PostFormValue("name"))
	upd.Name = &name
	role, err := tickets.ParseRole(r.PostFormValue("role"))
	if err != nil {
		fail("Choose a role: user, moderator or admin.")
		return
	}
	upd.Role = &role
	upd.Skills = tickets.SplitSkills(r.PostFormValue("skills"))
	active := r.PostFormValue("active") == "1"
	upd.Active = &active
	if pw := r.PostFormValue("password"); pw != "" {
		hash, err := HashPassword(pw)
		if err != nil {
			fail(strings.TrimPrefix(err.Error(), "admin: ") + ".")
			return
		}
		upd.PasswordHash = &hash
	}
	if id == v.User.ID && (role != tickets.RoleAdmin || !active) {
		fail("You cannot demote or deactivate yourself; ask another admin.")
		return
	}
	updated, err := s.st.UpdateUser(ctx, id, upd)
	if err != nil {
		if status, _, msg := classify(err); status == http.StatusUnprocessableEntity {
			fail(msg)
			return
		}
		s.errorPage(w, r, err)
		return
	}
	if upd.PasswordHash != nil && id == v.User.ID {
		// A new password ends the account's other sessions; this one
		// goes on under it.
		s.sessions.Put(ctx, "pw", passwordStamp(updated))
	}
	s.log.Info("staff changed", "user_id", id, "role", string(role), "active", active, "by", v.User.ID)
	s.flash(r, "Saved "+u.Email+".")
	s.redirect(w, r, "/people")
}

// peopleClearBouncing clears the bouncing mark of an address: sign-in
// links and automatic mail go to it again, and a staff member is assigned
// again. Reports about mail sent before now are not believed again.
func (s *server) peopleClearBouncing(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := viewerFrom(ctx)
	id, err := pathID(r, "id")
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	u, err := s.st.User(ctx, id)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	cleared, err := s.st.ClearBouncing(ctx, id, v.actor(tickets.ChannelWeb))
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	if cleared {
		s.log.Info("bouncing mark cleared", "user_id", id, "by", v.User.ID)
		s.flash(r, "Cleared the bouncing mark of "+u.Email+".")
	} else {
		s.flash(r, u.Email+" was not marked bouncing.")
	}
	s.redirect(w, r, "/people")
}
