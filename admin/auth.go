package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/crypto/bcrypt"

	"ticketd/signing"
	"ticketd/tickets"
)

// How a viewer proved who they are. Only a password (pages) or an API token
// gives a moderator or admin their role's powers; a link from a mail signs
// anyone in as a requester, to the tickets they take part in.
const (
	authPassword = "password"
	authLink     = "link"
	authToken    = "token"
)

// MinPasswordLength is the shortest password ticketd accepts.
const MinPasswordLength = 10

// HashPassword returns the bcrypt hash ticketd stores in
// tickets.User.PasswordHash.
func HashPassword(password string) (string, error) {
	if len(password) < MinPasswordLength {
		return "", fmt.Errorf("admin: a password needs at least %d characters", MinPasswordLength)
	}
	if len(password) > 72 {
		// bcrypt ignores every byte after the 72nd.
		return "", errors.New("admin: a password may have at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("admin: hash password: %w", err)
	}
	return string(h), nil
}

type viewer struct {
	User tickets.User
	Auth string
}

func (v *viewer) staff() bool {
	return v != nil && v.User.Active && v.User.Role.IsStaff() && (v.Auth == authPassword || v.Auth == authToken)
}

func (v *viewer) admin() bool { return v.staff() && v.User.Role == tickets.RoleAdmin }

// scope is what the viewer may see and change. Anyone who is not signed in
// as staff sees the tickets they take part in.
func (s *server) scope(v *viewer) tickets.Scope {
	if v.staff() {
		return tickets.ScopeFor(v.User, s.opts.ModeratorsSeeUnassigned)
	}
	return tickets.Scope{ParticipantID: v.User.ID}
}

func (v *viewer) actor(channel tickets.Channel) tickets.Actor {
	id := v.User.ID
	return tickets.Actor{UserID: &id, Channel: channel}
}

type viewerKey struct{}

func viewerFrom(ctx context.Context) *viewer {
	v, _ := ctx.Value(viewerKey{}).(*viewer)
	return v
}

func withViewer(ctx context.Context, v *viewer) context.Context {
	return context.WithValue(ctx, viewerKey{}, v)
}

// loadViewer reads the session's user from the database on every request,
// so a deactivated account or a changed role takes effect at once.
func (s *server) loadViewer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		uid := s.sessions.GetInt64(ctx, "uid")
		if uid == 0 {
			next.ServeHTTP(w, r)
			return
		}
		u, err := s.st.User(ctx, uid)
		auth := s.sessions.GetString(ctx, "auth")
		// A password session ends when the account is deactivated or
		// its password changes.
		if errors.Is(err, tickets.ErrNotFound) ||
			(err == nil && (!u.Active || auth == authPassword && s.sessions.GetString(ctx, "pw") != passwordStamp(u))) {
			if err := s.sessions.Destroy(ctx); err != nil {
				s.errorPage(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if err != nil {
			s.errorPage(w, r, err)
			return
		}
		v := &viewer{User: u, Auth: auth}
		next.ServeHTTP(w, r.WithContext(withViewer(ctx, v)))
	})
}

// passwordStamp names the password a session was opened with without
// holding it: bcrypt salts every hash anew, so a changed password gives
// another stamp.
func passwordStamp(u tickets.User) string {
	if u.PasswordHash == nil {
		return ""
	}
	sum := sha256.Sum256([]byte(*u.PasswordHash))
	return hex.EncodeToString(sum[:12])
}

// toSignIn sends a visitor to a sign-in page and back here afterwards.
func (s *server) toSignIn(w http.ResponseWriter, r *http.Request, signIn string) {
	if r.Method == http.MethodGet {
		s.sessions.Put(r.Context(), "next", r.URL.RequestURI())
	}
	s.redirect(w, r, signIn)
}

func (s *server) requireStaff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		switch {
		case r.Method == http.MethodGet && r.URL.Query().Has("token") && chi.URLParam(r, "id") != "":
			// outbound's default link form, /tickets/<id>?token=<token>.
			s.openSignedLink(w, r, r.URL.Query().Get("token"))
		case v.staff():
			next.ServeHTTP(w, r)
		case v == nil || v.User.Role.IsStaff():
			// Staff who came in by a mail link still need their password.
			s.toSignIn(w, r, "/signin")
		default:
			s.errorPage(w, r, errNoRoute)
		}
	})
}

func (s *server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !viewerFrom(r.Context()).admin() {
			s.errorPage(w, r, errForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) requireSignedIn(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if viewerFrom(r.Context()) == nil {
			s.toSignIn(w, r, "/portal/signin")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) home(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	switch {
	case v == nil:
		s.redirect(w, r, "/signin")
	case v.staff():
		s.redirect(w, r, "/tickets")
	default:
		s.redirect(w, r, "/portal")
	}
}

// SignInPage is the staff sign-in form.
type SignInPage struct {
	Page
	Email string
	Error string
}

func (s *server) signInForm(w http.ResponseWriter, r *http.Request) {
	if viewerFrom(r.Context()).staff() {
		s.redirect(w, r, "/tickets")
		return
	}
	s.render(w, r, http.StatusOK, "signin", SignInPage{Page: s.page(r, "Sign in", "signin")})
}

// signIn checks a password. Failures count against the account with the
// client's address, and against the address (Limits): past the free ones
// the client waits, longer at each failure, before another password is
// even checked. Nobody else waits: a stranger's guesses do not keep the
// account's owner out. A success starts a new session (a new token: a
// session id planted before sign-in is worthless after it).
func (s *server) signIn(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	email := tickets.NormalizeEmail(r.PostFormValue("email"))
	password := r.PostFormValue("password")
	ip := s.clientIP(r)
	data := SignInPage{Page: s.page(r, "Sign in", "signin"), Email: email}
	client := clientKey(ip)
	keys := []string{"signin:" + email + " " + client, "signin-ip:" + client}
	lim := s.opts.Limits
	stats, err := s.st.WebAttemptStats(ctx, lim.Window, keys...)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	wait := max(lim.wait(stats[keys[0]].Count, lim.FreeFailures)-stats[keys[0]].Since,
		lim.wait(stats[keys[1]].Count, lim.FreeFailuresPerIP)-stats[keys[1]].Since)
	if wait > 0 {
		s.log.Warn("sign-in refused: too many failures from this address", "email", email, "remote", ip, "wait", wait.Round(time.Second))
		data.Error = fmt.Sprintf("Too many wrong passwords from your address. Wait %s and try again.", waitText(wait))
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
		s.render(w, r, http.StatusTooManyRequests, "signin", data)
		return
	}
	u, err := s.st.UserByEmail(ctx, email)
	if err != nil && !errors.Is(err, tickets.ErrNotFound) {
		s.errorPage(w, r, err)
		return
	}
	// An unknown account is checked against a hash of nothing, so a failed
	// sign-in takes as long whether or not the address exists.
	hash := s.dummyHash
	if err == nil && u.PasswordHash != nil {
		hash = []byte(*u.PasswordHash)
	}
	match := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	if err != nil || u.PasswordHash == nil || !match || !u.Active || !u.Role.IsStaff() {
		if err := s.st.RecordWebAttempts(ctx, keys...); err != nil {
			s.errorPage(w, r, err)
			return
		}
		s.log.Info("sign-in failed", "email", email, "remote", ip)
		data.Error = "Wrong email or password."
		s.render(w, r, http.StatusUnprocessableEntity, "signin", data)
		return
	}
	if err := s.st.ForgetWebAttempts(ctx, keys[0]); err != nil {
		s.errorPage(w, r, err)
		return
	}
	next := localPath(s.sessions.PopString(ctx, "next"))
	if err := s.sessions.RenewToken(ctx); err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.sessions.Put(ctx, "uid", u.ID)
	s.sessions.Put(ctx, "auth", authPassword)
	s.sessions.Put(ctx, "pw", passwordStamp(u))
	s.log.Info("signed in", "user_id", u.ID, "remote", ip)
	if next == "" || strings.HasPrefix(next, "/portal") {
		next = "/tickets"
	}
	s.redirect(w, r, next)
}

func (s *server) signOut(w http.ResponseWriter, r *http.Request) {
	to := "/signin"
	if v := viewerFrom(r.Context()); v != nil && !v.staff() {
		to = "/portal/signin"
	}
	if err := s.sessions.Destroy(r.Context()); err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.redirect(w, r, to)
}

// signedLink opens a ticket from the signed link of a notification mail,
// /t/{id}?k=<token>: the token (signing.PurposeLink) names the ticket and
// the person it was sent to. A requester gets a portal session as that
// person; staff are sent to the ticket's page, behind their password.
//
// Opening a link never replaces the session of somebody else signed in on
// the same browser, since anyone can send anyone a link of their own:
// staff signed in stay themselves and go to the ticket's staff page, and
// another requester is asked to confirm with a button (signedLinkConfirm).
func (s *server) signedLink(w http.ResponseWriter, r *http.Request) {
	s.openSignedLink(w, r, r.URL.Query().Get("k"))
}

// signedLinkConfirm is the button of that question: POST /t/{id} with k.
func (s *server) signedLinkConfirm(w http.ResponseWriter, r *http.Request) {
	s.openSignedLink(w, r, r.PostFormValue("k"))
}

func (s *server) openSignedLink(w http.ResponseWriter, r *http.Request, token string) {
	ctx := r.Context()
	invalidLink := &userError{status: http.StatusForbidden, code: "invalid_link",
		msg: "This link has expired or is not valid. Ask for a sign-in link below."}
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil {
		s.errorPage(w, r, errNoRoute)
		return
	}
	c, err := s.opts.Keys.Verify(signing.PurposeLink, token, s.now())
	if err != nil || c.TicketID != id {
		s.log.Info("signed link refused", "ticket_id", id, "err", err)
		s.render(w, r, invalidLink.status, "portal_signin", PortalSignInPage{
			Page: s.page(r, "Link expired", "portal"), Error: invalidLink.msg})
		return
	}
	u, err := s.st.User(ctx, c.UserID)
	if err != nil || !u.Active {
		s.render(w, r, invalidLink.status, "portal_signin", PortalSignInPage{
			Page: s.page(r, "Link expired", "portal"), Error: invalidLink.msg})
		return
	}
	if u.Role.IsStaff() {
		_, err := s.st.VisibleTicket(ctx, tickets.ScopeFor(u, s.opts.ModeratorsSeeUnassigned), id, false)
		switch {
		case err == nil:
			v := viewerFrom(ctx)
			if v.staff() && v.User.ID == u.ID {
				s.redirect(w, r, "/tickets/"+strconv.FormatInt(id, 10))
				return
			}
			s.sessions.Put(ctx, "next", "/tickets/"+strconv.FormatInt(id, 10))
			s.redirect(w, r, "/signin")
			return
		case !isNotFound(err):
			s.errorPage(w, r, err)
			return
		}
		// A ticket staff opened or were copied on themselves, and do not
		// work: they follow it on the portal, like any requester.
	}
	if _, err := s.st.VisibleTicket(ctx, tickets.Scope{ParticipantID: u.ID}, id, false); err != nil {
		s.errorPage(w, r, err)
		return
	}
	ticketPath := strconv.FormatInt(id, 10)
	v := viewerFrom(ctx)
	switch {
	case v != nil && v.User.ID != u.ID && v.staff():
		s.redirect(w, r, "/tickets/"+ticketPath)
		return
	case v != nil && v.User.ID != u.ID && r.Method != http.MethodPost:
		s.render(w, r, http.StatusOK, "portal_login", PortalLoginPage{Page: s.page(r, "Sign in", "portal"),
			Action: "/t/" + ticketPath, Field: "k", Token: token, Email: u.Email, Current: v.User.Email})
		return
	case v == nil || v.User.ID != u.ID:
		if err := s.sessions.RenewToken(ctx); err != nil {
			s.errorPage(w, r, err)
			return
		}
		s.sessions.Put(ctx, "uid", u.ID)
		s.sessions.Put(ctx, "auth", authLink)
		s.log.Info("signed in by ticket link", "user_id", u.ID, "ticket_id", id)
	}
	s.redirect(w, r, "/portal/tickets/"+ticketPath)
}

// waitText says a wait the way people read it: seconds, or whole minutes.
func waitText(d time.Duration) string {
	if d < 90*time.Second {
		n := int(d.Seconds() + 0.999)
		if n == 1 {
			return "a second"
		}
		return strconv.Itoa(n) + " seconds"
	}
	return strconv.Itoa(int(d.Minutes()+0.999)) + " minutes"
}

// overLimit records an attempt under each key and reports whether any key
// had reached its limit within the window already.
func (s *server) overLimit(ctx context.Context, limits map[string]int) (bool, error) {
	keys := make([]string, 0, len(limits))
	for k := range limits {
		keys = append(keys, k)
	}
	counts, err := s.st.CountWebAttempts(ctx, s.now().Add(-s.opts.Limits.Window), keys...)
	if err != nil {
		return false, err
	}
	if err := s.st.RecordWebAttempts(ctx, keys...); err != nil {
		return false, err
	}
	for k, max := range limits {
		if counts[k] >= max {
			return true, nil
		}
	}
	return false, nil
}
