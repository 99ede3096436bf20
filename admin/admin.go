// Package admin serves ticketd's web: the pages where admins and moderators
// work tickets, the requesters' portal, and the JSON API under /api/v1.
//
// Pages are server-rendered with html/template from embedded files parsed
// once in New, and work without JavaScript. Sessions live in PostgreSQL
// (scs with pgxstore); every form carries a CSRF token (nosurf); roles are
// checked in every handler against the ticket's scope, and a ticket outside
// the viewer's scope answers 404 as if it did not exist.
package admin

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/alexedwards/scs/v2"
	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/justinas/nosurf"
	"golang.org/x/crypto/bcrypt"

	"ticketd/inbound"
	"ticketd/signing"
	"ticketd/tickets"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Notifier queues the mails the web itself causes, inside the caller's
// transaction. *outbound.Notifier implements it.
type Notifier interface {
	// StaffReply queues a staff message of the thread to the requester and
	// the people copied.
	StaffReply(ctx context.Context, st *tickets.Store, dedupe string, messageID int64) error
	// SignInLink queues a mail with a one-time sign-in link for the portal.
	SignInLink(ctx context.Context, st *tickets.Store, dedupe string, user tickets.User, link string) error
}

// DeliverFunc hands a whole RFC 5322 message to intake, the one way mail
// enters ticketd: (*inbound.Intake).Deliver. The portal's "new ticket" form
// and requesters' replies on the portal or the API go through it with
// Source.Kind "web" or "api", so they are threaded, parsed, stored and
// triaged exactly as mail is. An error means nothing was stored.
type DeliverFunc func(ctx context.Context, raw []byte, src inbound.Source) (inbound.Result, error)

// Options configure the web.
type Options struct {
	// Pool is the database; sessions are stored in it too. Required.
	Pool *pgxpool.Pool
	// Store is the tickets store; by default one on Pool.
	Store *tickets.Store
	// Logger receives errors and security events; by default slog.Default().
	Logger *slog.Logger
	// Notifier queues staff replies and sign-in links. Required.
	Notifier Notifier
	// Deliver hands mails written on the portal or the API to intake. Required.
	Deliver DeliverFunc
	// Keys verify the signed ticket links of notification mails
	// (signing.PurposeLink) and sign the reply address of mails written on
	// the portal (signing.PurposeReply). Required.
	Keys *signing.Keys
	// BaseURL is where people reach the web, such as
	// https://support.example.com; sign-in links point there, and form posts
	// from that origin pass the CSRF origin check behind a proxy. Required.
	BaseURL string
	// SupportAddress is the address people write to, such as
	// support@example.com. Required.
	SupportAddress string
	// SecureCookies marks cookies Secure and sends HSTS; set it behind TLS.
	SecureCookies bool
	// ModeratorsSeeUnassigned lets moderators see, take and work tickets
	// nobody is assigned to, besides their own.
	ModeratorsSeeUnassigned bool
	// TrustProxy takes the client's address from the last X-Forwarded-For
	// hop, for rate limits behind a reverse proxy.
	TrustProxy bool
	// SessionLifetime is how long a sign-in lasts; 12 hours by default.
	SessionLifetime time.Duration
	// SessionIdleTimeout ends a session unused this long; 2 hours by default.
	SessionIdleTimeout time.Duration
	// SignInLinkTTL is how long a portal sign-in link works; 15 minutes by
	// default.
	SignInLinkTTL time.Duration
	// Limits of sign-in attempts; see Limits.
	Limits Limits
	// Now returns the current time; time.Now by default.
	Now func() time.Time
}

// Limits bound sign-in attempts within Window. Zero fields take the defaults.
//
// Wrong passwords count by account and client address together, and by
// client address alone, never by account alone: whoever guesses at an
// account slows down only their own attempts, so a stranger cannot lock
// its owner out. Past the free failures, each further attempt from that
// address waits FirstDelay, doubled at every failure, up to Window;
// failures older than Window are forgotten, and a right password clears
// its account and address.
type Limits struct {
	Window            time.Duration // how long a failure counts: 15 minutes
	FreeFailures      int           // wrong passwords for one account from one client address before the waits: 3
	FreeFailuresPerIP int           // wrong passwords from one client address, whatever the account, before the waits: 10
	FirstDelay        time.Duration // the first wait: 1 second
	LinksPerAddress   int           // portal sign-in links per email address: 3
	LinksPerIP        int           // portal sign-in links asked from one client address: 10
}

// wait is how long a client must wait after its newest of failures failed
// passwords before the next is checked.
func (l Limits) wait(failures, free int) time.Duration {
	if failures < free {
		return 0
	}
	d := l.FirstDelay
	for i := free; i < failures && d < l.Window; i++ {
		d *= 2
	}
	return min(d, l.Window)
}

func (l *Limits) defaults() {
	if l.Window <= 0 {
		l.Window = 15 * time.Minute
	}
	if l.FreeFailures <= 0 {
		l.FreeFailures = 3
	}
	if l.FreeFailuresPerIP <= 0 {
		l.FreeFailuresPerIP = 10
	}
	if l.FirstDelay <= 0 {
		l.FirstDelay = time.Second
	}
	if l.LinksPerAddress <= 0 {
		l.LinksPerAddress = 3
	}
	if l.LinksPerIP <= 0 {
		l.LinksPerIP = 10
	}
}

type server struct {
	opts     Options
	st       *tickets.Store
	log      *slog.Logger
	sessions *scs.SessionManager
	pages    map[string]*template.Template
	san      *Sanitizer
	base     *url.URL
	domain   string // of the support address, for Message-IDs
	now      func() time.Time

	dummyHash []byte
}

// New builds the web's handler. Templates are parsed here: a missing or
// broken template fails New. Mount the handler at / (it serves /api/v1,
// /static/ and the pages).
func New(o Options) (http.Handler, error) {
	s, err := newServer(o)
	if err != nil {
		return nil, err
	}
	return s.routes(), nil
}

func newServer(o Options) (*server, error) {
	switch {
	case o.Pool == nil:
		return nil, errors.New("admin: Options.Pool is required")
	case o.Notifier == nil:
		return nil, errors.New("admin: Options.Notifier is required")
	case o.Deliver == nil:
		return nil, errors.New("admin: Options.Deliver is required")
	case o.Keys == nil:
		return nil, errors.New("admin: Options.Keys is required")
	}
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("admin: BaseURL %q is not an http(s) URL", o.BaseURL)
	}
	addr, err := mail.ParseAddress(o.SupportAddress)
	if err != nil {
		return nil, fmt.Errorf("admin: SupportAddress %q: %w", o.SupportAddress, err)
	}
	_, domain, _ := strings.Cut(addr.Address, "@")
	o.SupportAddress = addr.Address
	if o.Store == nil {
		o.Store = tickets.NewStore(o.Pool)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SessionLifetime <= 0 {
		o.SessionLifetime = 12 * time.Hour
	}
	if o.SessionIdleTimeout <= 0 {
		o.SessionIdleTimeout = 2 * time.Hour
	}
	if o.SignInLinkTTL <= 0 {
		o.SignInLinkTTL = 15 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Limits.defaults()
	pages, err := parseTemplates(templateFiles)
	if err != nil {
		return nil, err
	}
	s := &server{opts: o, st: o.Store, log: o.Logger, pages: pages, base: base, san: NewSanitizer(),
		domain: strings.ToLower(domain), now: o.Now}
	if s.dummyHash, err = bcrypt.GenerateFromPassword([]byte("no account has this password"), bcrypt.DefaultCost); err != nil {
		return nil, fmt.Errorf("admin: hash: %w", err)
	}

	sm := scs.New()
	// Expired rows are pruned by RunCleanup, a loop the caller runs; the
	// store's own cleanup goroutine is off.
	sm.Store = pgxstore.NewWithCleanupInterval(o.Pool, 0)
	sm.Lifetime = o.SessionLifetime
	sm.IdleTimeout = o.SessionIdleTimeout
	sm.Cookie.Name = "ticketd_session"
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = o.SecureCookies
	sm.Cookie.Path = "/"
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		s.log.Error("session store", "err", err, "path", r.URL.Path)
		http.Error(w, "the session store is unavailable; try again shortly", http.StatusServiceUnavailable)
	}
	s.sessions = sm
	return s, nil
}

func (s *server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer, s.securityHeaders)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			s.apiError(w, r, errNoRoute)
			return
		}
		s.errorPage(w, r, errNoRoute)
	})
	static, _ := fs.Sub(staticFiles, "static")
	fileServer := http.StripPrefix("/static/", http.FileServerFS(static))
	r.Get("/static/*", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fileServer.ServeHTTP(w, r)
	})
	r.Route("/api/v1", s.apiRoutes)

	r.Group(func(r chi.Router) {
		r.Use(s.limitBody, s.sessions.LoadAndSave, s.csrf, s.loadViewer)
		r.Get("/", s.home)
		r.Get("/signin", s.signInForm)
		r.Post("/signin", s.signIn)
		r.Post("/signout", s.signOut)
		r.Get("/t/{id}", s.signedLink)
		r.Post("/t/{id}", s.signedLinkConfirm)

		r.Group(func(r chi.Router) {
			r.Use(s.requireStaff)
			r.Get("/tickets", s.ticketList)
			r.Get("/tickets/{id}", s.ticketPage)
			r.Get("/tickets/{id}/attachments/{aid}", s.staffAttachment)
			r.Post("/tickets/{id}/assign", s.ticketChange("Assignee", s.ticketAssign))
			r.Post("/tickets/{id}/status", s.ticketChange("Status", s.ticketStatus))
			r.Post("/tickets/{id}/priority", s.ticketChange("Priority", s.ticketPriority))
			r.Post("/tickets/{id}/notes", s.ticketNotes)
			r.Post("/tickets/{id}/reply", s.ticketReply)
			r.Post("/tickets/{id}/messages/{mid}/release", s.ticketRelease)
			r.Get("/tokens", s.tokenList)
			r.Post("/tokens", s.tokenCreate)
			r.Post("/tokens/{id}/revoke", s.tokenRevoke)
			r.Group(func(r chi.Router) {
				r.Use(s.requireAdmin)
				r.Get("/tickets/{id}/messages/{mid}/raw", s.messageRaw)
				r.Get("/quarantine", s.quarantineList)
				r.Get("/quarantine/{id}", s.quarantineShow)
				r.Post("/quarantine/{id}/release", s.quarantineRelease)
				r.Get("/people", s.peopleList)
				r.Post("/people", s.peopleCreate)
				r.Post("/people/{id}", s.peopleUpdate)
				r.Post("/people/{id}/clear-bouncing", s.peopleClearBouncing)
				r.Get("/skills", s.skillList)
				r.Post("/skills", s.skillSave)
				r.Post("/skills/delete", s.skillDelete)
				r.Get("/saved-replies", s.savedReplyList)
				r.Post("/saved-replies", s.savedReplySave)
				r.Post("/saved-replies/delete", s.savedReplyDelete)
			})
		})

		r.Get("/portal/signin", s.portalSignInForm)
		r.Post("/portal/signin", s.portalSignIn)
		r.Get("/portal/login", s.portalLoginForm)
		r.Post("/portal/login", s.portalLogin)
		r.Group(func(r chi.Router) {
			r.Use(s.requireSignedIn)
			r.Get("/portal", s.portalHome)
			r.Get("/portal/new", s.portalNewForm)
			r.Post("/portal/new", s.portalNew)
			r.Get("/portal/tickets/{id}", s.portalTicket)
			r.Post("/portal/tickets/{id}/reply", s.portalReply)
			r.Get("/portal/tickets/{id}/attachments/{aid}", s.portalAttachment)
		})
	})
	return r
}

// recoverer turns a handler's panic into a 500 and a log line with the
// stack, so one bad request cannot take the server down.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in web handler", "err", fmt.Sprint(v), "path", r.URL.Path,
					"stack", string(debug.Stack()))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// basePolicy is the Content-Security-Policy of every response: no inline
// script, no script from anywhere but this site (and the pages ship none),
// no framing, no plugins, forms post only here.
const basePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// remoteImagesPolicy is basePolicy with images from anywhere, for a viewer
// who asked to load a mail's remote images.
const remoteImagesPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; " +
	"font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (s *server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", basePolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// Same-origin only: a signed link's token never leaves in a Referer,
		// while form posts keep their Origin for the CSRF check.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if s.opts.SecureCookies {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// csrf checks every unsafe request of the pages: the origin must be this
// site and the form must carry the token of the csrf cookie.
func (s *server) csrf(next http.Handler) http.Handler {
	h := nosurf.New(next)
	h.SetBaseCookie(http.Cookie{Name: "ticketd_csrf", Path: "/", HttpOnly: true,
		Secure: s.opts.SecureCookies, SameSite: http.SameSiteLaxMode, MaxAge: nosurf.MaxAge})
	h.SetIsTLSFunc(func(r *http.Request) bool { return r.TLS != nil || s.base.Scheme == "https" })
	h.SetIsAllowedOriginFunc(func(u *url.URL) bool {
		return strings.EqualFold(u.Scheme, s.base.Scheme) && strings.EqualFold(u.Host, s.base.Host)
	})
	h.SetFailureHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("csrf check failed", "path", r.URL.Path, "reason", fmt.Sprint(nosurf.Reason(r)),
			"remote", s.clientIP(r))
		s.errorPage(w, r, &userError{status: http.StatusForbidden, code: "csrf",
			msg: "This form has expired or did not come from this site. Go back, reload the page and try again."})
	}))
	return h
}

// clientIP is the address rate limits count against.
func (s *server) clientIP(r *http.Request) string {
	if s.opts.TrustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			if ip := strings.TrimSpace(parts[len(parts)-1]); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientKey is the client address limits count by: an IPv4 address, or
// the /64 an IPv6 address is in (one host commonly holds a whole /64).
func clientKey(ip string) string {
	a := net.ParseIP(ip)
	switch {
	case a == nil:
		return ip
	case a.To4() != nil:
		return a.To4().String()
	}
	return a.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// localPath accepts a redirect target only when it stays on this site.
func localPath(p string) string {
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") ||
		strings.ContainsAny(p, "\r\n") {
		return ""
	}
	return p
}

func (s *server) link(path string) string { return s.base.String() + path }

// TicketLink builds the signed ticket links of notification mails for
// outbound.NotifierOptions.TicketLink: baseURL/t/<id>?k=<token>.
func TicketLink(baseURL string) func(ticketID int64, token string) string {
	base := strings.TrimRight(baseURL, "/")
	return func(ticketID int64, token string) string {
		return base + "/t/" + strconv.FormatInt(ticketID, 10) + "?k=" + url.QueryEscape(token)
	}
}
